"""Adaptive transfer learning and the ASPECTS cascade of Jung and Whangbo (paper 004, chapter 05).

- ``region_cv``: patient-level cross-validation of a region classifier that trains on a
  subset of the training folds' crops (every positive, a few intact regions per scan)
  and scores every crop of the test patients, so that every metric is taken at the
  cohort's own prevalence and every region of a test scan has a score (the cascade
  needs them all).
- ``transferred``: a model factory whose models start from a source task's weights
  (every layer but ``last_linear``) with ``layer0`` ... ``layer{depth}`` frozen.
- ``f_theta``: the paper's equation (2), f(theta) = w1 L(e1) + w2 mean_k L(e_k), from
  one run's validation losses, and ``adaptive_choice``, its argmin over depths.
- ``aspects``: 10 minus the regions with an early ischaemic sign on the more affected
  side, per scan.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from stroke_lib.metrics import youden_threshold
from stroke_lib.train import TrainConfig, patient_folds, train_and_test


def training_subset(y: np.ndarray, scans: np.ndarray, negatives_per_scan: int, seed: int = 0) -> np.ndarray:
    """Rows a region classifier trains on: every positive row and at most
    ``negatives_per_scan`` negative rows of each scan, drawn with ``seed`` (0: every row).
    Returns a bool mask (N,)."""
    y, scans = np.asarray(y), np.asarray(scans)
    keep = (y == 1) | (negatives_per_scan <= 0)
    if negatives_per_scan > 0:
        rng = np.random.default_rng(seed)
        for scan in np.unique(scans):
            neg = np.flatnonzero((scans == scan) & (y == 0))
            keep[rng.choice(neg, size=min(len(neg), negatives_per_scan), replace=False)] = True
    return keep


def region_cv(make_model: Callable[[], nn.Module], x: torch.Tensor, y: np.ndarray, groups: np.ndarray,
              trainable: np.ndarray, n_splits: int, config: TrainConfig) -> tuple[np.ndarray, list[dict]]:
    """Stratified patient k-fold over region crops.

    Each fold trains (``train.train_and_test``: an inner patient split for early
    stopping) on the training patients' rows where ``trainable`` is True and scores every
    row of its test patients.

    Args:
        x: (N, C, H, W) crops. y: 0/1 (N,). groups: patient of each row (N,).
        trainable: bool (N,), e.g. ``training_subset``.
    Returns:
        out-of-fold scores (N,) and one record per fold: ``fit`` (its ``history`` holds
        the validation loss per epoch), ``threshold`` (Youden's on the inner validation
        rows), ``test_index``.
    """
    y, groups, trainable = np.asarray(y), np.asarray(groups), np.asarray(trainable, bool)
    scores = np.full(len(y), np.nan)
    folds = []
    for k, (tr, te) in enumerate(patient_folds(y, groups, n_splits, config.seed)):
        tr = tr[trainable[tr]]
        cfg = TrainConfig(**{**config.__dict__, "seed": config.seed + k})
        out = train_and_test(make_model, x[tr], y[tr], groups[tr], x[te], cfg)
        scores[te] = out["score_test"]
        folds.append({"fit": out["fit"], "threshold": youden_threshold(out["y_val"], out["score_val"]),
                      "test_index": te})
    return scores, folds


def transferred(make_model: Callable[[], nn.Module], source_state: Mapping[str, torch.Tensor],
                depth: int) -> Callable[[], nn.Module]:
    """A factory of ``make_model()`` networks loaded with ``source_state`` except
    ``last_linear`` (a new head for the target task) and frozen to ``depth``
    (``SEResNeXt.freeze``; -1: every layer fine-tuned)."""
    body = {k: v for k, v in source_state.items() if not k.startswith("last_linear.")}

    def make() -> nn.Module:
        model = make_model()
        missing, unexpected = model.load_state_dict(body, strict=False)
        if unexpected or any(not k.startswith("last_linear.") for k in missing):
            raise ValueError(f"source weights do not fit the target network: missing {missing}, "
                             f"unexpected {unexpected}")
        return model.freeze(depth)

    return make


def f_theta(val_loss: Sequence[float], w1: float = 0.5, w2: float = 0.5, epochs: int | None = None) -> float:
    """Equation (2) of the paper for one freezing depth: ``w1 * L(e1) + w2 * mean(L(e1..e))``,
    L the validation BCE after each epoch, over the first ``epochs`` epochs (None: all)."""
    losses = np.asarray(val_loss, float)[: epochs or None]
    if losses.size == 0:
        raise ValueError("f(theta) needs at least one epoch's validation loss")
    return float(w1 * losses[0] + w2 * losses.mean())


def adaptive_choice(val_losses: Mapping[int, Sequence[float]], w1: float = 0.5, w2: float = 0.5,
                    epochs: int | None = None) -> tuple[int, dict[int, float]]:
    """argmin over depths of ``f_theta``; returns the chosen depth and f of every depth."""
    f = {depth: f_theta(losses, w1, w2, epochs) for depth, losses in val_losses.items()}
    return min(f, key=f.get), f


def aspects(rows: pd.DataFrame, affected: np.ndarray) -> pd.Series:
    """ASPECTS-like score per scan: 10 minus the regions called affected on the side with
    more of them (``rows``: ``scan_id`` and ``side`` of each region crop; ``affected`` bool
    per crop). Scans with no affected region score 10."""
    counts = (pd.DataFrame({"scan_id": rows.scan_id.to_numpy(), "side": rows.side.to_numpy(),
                            "affected": np.asarray(affected, bool)})
              .groupby(["scan_id", "side"]).affected.sum().unstack(fill_value=0))
    return (10 - counts.max(axis=1)).astype(int)
