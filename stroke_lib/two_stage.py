"""The two-stage recipe of the winning RSNA 2019 haemorrhage solutions, by patient-level
cross-validation: a slice CNN trained on slice labels, then frozen under a sequence model
trained on scan labels.

Fold by fold, on the same patient folds as ``train.cross_validate`` (same seed, same
stratification):

1. stage 1 trains ``slice_classifier(C, K, "centre")`` on every slice of the fold's
   training patients, each slice with its neighbours (``models.slices.slice_windows``),
   labelled by what the slice shows (``slice_labels``); early stopping on an inner
   patient-level split of those patients, as every fit of the book;
2. stage 2 copies its encoder into ``slice_classifier(C, K, aggregation)``, freezes it
   (``SliceClassifier.freeze_encoder``) and trains the rest over whole scans with the
   scan labels, then scores the fold's test patients.

No test patient's slice is seen in either stage of its fold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import Compose

from stroke_lib.models.slices import Aggregation, slice_classifier, slice_windows
from stroke_lib.train import TrainConfig, patient_folds, train_and_test

#: Stage 1 trains on single slices, many more samples than scans: its batch is this
#: many times the scan batch.
STAGE1_BATCH_FACTOR = 4


def two_stage_cv(x: torch.Tensor, y: np.ndarray, groups: np.ndarray, slice_labels: np.ndarray, n_splits: int,
                 config: TrainConfig, aggregation: Aggregation = "gru", slim: bool = False,
                 stage1_augment: Compose | None = None,
                 stage1_from: Sequence[dict] | None = None) -> tuple[np.ndarray, list[dict]]:
    """The two-stage recipe in ``n_splits``-fold patient-level cross-validation.

    Args:
        x: scans (N, C, X, Y, S). y: scan labels (N,), class indices when
            ``config.classes`` > 2. groups: patient of each scan (N,).
        slice_labels: (N, S) the label of each slice, in the classes of ``y``.
        config: both stages' training (stage 1 with ``STAGE1_BATCH_FACTOR`` times its
            batch and ``stage1_augment`` instead of ``config.augment``).
        aggregation, slim: of the stage-2 model (``slice_classifier``).
        stage1_augment: augmentation of stage 1's samples (C, X, Y, 3), or None.
        stage1_from: the fold records of an earlier call whose stage 1 was the same (the
            same scans, slice labels, folds and stage-1 settings: only stage 2 differs,
            e.g. by its augmentation): each fold's stage-1 encoder is taken from them
            instead of being trained again, which gives the same encoder.

    Raises:
        ValueError: slice labels of the wrong shape, or ``stage1_from`` records whose
        folds are not this call's.

    Returns:
        out-of-fold scores ((N,), or (N, K) with K classes) and one record per fold, as
        ``cross_validate``: stage 2's fit, validation labels and scores, test index, and
        ``stage1`` (stage 1's fit).
    """
    n_slices, channels = x.shape[-1], x.shape[1]
    if slice_labels.shape != (len(y), n_slices):
        raise ValueError(f"slice_labels has shape {slice_labels.shape}; the scans need ({len(y)}, {n_slices})")
    windows, slice_y = slice_windows(x), np.asarray(slice_labels).reshape(-1)
    slice_g = np.repeat(groups, n_slices)
    outputs = 1 if config.binary else config.classes  # one logit, or one per class
    scores = np.full(len(y) if config.binary else (len(y), config.classes), np.nan)
    records = []
    folds = patient_folds(y, groups, n_splits, config.seed, config.classes)
    if stage1_from is not None and (len(stage1_from) != len(folds) or not all(
            np.array_equal(r["test_index"], te) for r, (_, te) in zip(stage1_from, folds))):
        raise ValueError("stage1_from: its folds are not this call's (other scans, folds or seed)")
    for k, (tr, te) in enumerate(folds):
        seed = config.seed + k
        if stage1_from is None:
            rows = np.isin(slice_g, groups[tr])
            stage1 = TrainConfig(**{**config.__dict__, "seed": seed, "augment": stage1_augment,
                                    "batch_size": STAGE1_BATCH_FACTOR * config.batch_size})
            fit1 = train_and_test(lambda: slice_classifier(channels, outputs, "centre", slim=slim),
                                  windows[rows], slice_y[rows], slice_g[rows], windows[:1], stage1)["fit"]
        else:
            fit1 = stage1_from[k]["stage1"]
        state = fit1.model.encoder.state_dict()

        def frozen(state=state):
            model = slice_classifier(channels, outputs, aggregation, slim=slim)
            model.encoder.load_state_dict(state)
            return model.freeze_encoder()

        out = train_and_test(frozen, x[tr], y[tr], groups[tr], x[te], TrainConfig(**{**config.__dict__, "seed": seed}))
        scores[te] = out["score_test"]
        records.append({**out, "test_index": te, "stage1": fit1})
    return scores, records
