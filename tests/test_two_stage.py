"""The RSNA 2019 two-stage recipe (stroke_lib.two_stage) and the slice windows it trains on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from stroke_lib.models.slices import slice_windows
from stroke_lib.train import TrainConfig, patient_folds
from stroke_lib.two_stage import two_stage_cv


def test_slice_windows_put_each_slice_between_its_neighbours():
    x = torch.arange(2 * 1 * 2 * 2 * 4, dtype=torch.float32).reshape(2, 1, 2, 2, 4)
    w = slice_windows(x)
    assert w.shape == (8, 1, 2, 2, 3)
    for n in range(2):
        for s in range(4):
            row = w[n * 4 + s]
            assert torch.equal(row[..., 1], x[n, ..., s])
            assert torch.equal(row[..., 0], x[n, ..., s - 1] if s > 0 else torch.zeros_like(row[..., 0]))
            assert torch.equal(row[..., 2], x[n, ..., s + 1] if s < 3 else torch.zeros_like(row[..., 2]))
    assert slice_windows(x, context=2).shape == (8, 1, 2, 2, 5)


def _scans(n: int = 36, slices: int = 4, seed: int = 0):
    """Noise scans (n, 1, 8, 8, slices); half the patients have a bright square on one
    slice, which alone is labelled 1 there (slice labels) and makes the scan 1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 1, 8, 8, slices)).astype(np.float32)
    y = np.arange(n) % 2
    slice_y = np.zeros((n, slices), int)
    for i in np.flatnonzero(y):
        s = rng.integers(slices)
        x[i, 0, 2:6, 2:6, s] += 3.0
        slice_y[i, s] = 1
    return torch.from_numpy(x), y, np.array([f"p{i // 2}" for i in range(n)]), slice_y


def test_two_stage_learns_from_slice_labels_and_keeps_its_encoder_frozen():
    x, y, groups, slice_y = _scans()
    config = TrainConfig(epochs=12, patience=12, lr=3e-3, batch_size=4, device="cpu", seed=0, progress=False)
    scores, folds = two_stage_cv(x, y, groups, slice_y, 3, config, "gru", slim=True)
    assert scores.shape == (len(y),) and not np.isnan(scores).any()
    assert roc_auc_score(y, scores) > 0.9
    # the folds are cross_validate's, and stage 2 runs the encoder stage 1 trained, unchanged
    for fold, (_, te) in zip(folds, patient_folds(y, groups, 3, config.seed)):
        assert np.array_equal(fold["test_index"], te)
        first, second = fold["stage1"].model.encoder.state_dict(), fold["fit"].model.encoder.state_dict()
        assert all(torch.equal(first[k].cpu(), second[k].cpu()) for k in first)
        assert not any(p.requires_grad for p in fold["fit"].model.encoder.parameters())


def test_two_stage_with_classes_gives_class_probabilities_and_checks_the_slice_labels():
    x, y, groups, slice_y = _scans(seed=1)
    config = TrainConfig(epochs=2, patience=2, batch_size=4, device="cpu", seed=0, progress=False,
                         classes=2, softmax=True)
    scores, _ = two_stage_cv(x, y, groups, slice_y, 3, config, "mean", slim=True)
    assert scores.shape == (len(y), 2) and np.allclose(scores.sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(36, 4\)"):
        two_stage_cv(x, y, groups, slice_y[:, :2], 3, config, slim=True)


def test_stage_one_taken_from_an_earlier_run_gives_the_same_scores_as_training_it_again():
    """A second model that differs only in stage 2 may reuse the first one's stage 1: with
    the same stage 2 it scores exactly as a fresh run; with other folds it is refused."""
    x, y, groups, slice_y = _scans(seed=2)
    config = TrainConfig(epochs=3, patience=3, lr=3e-3, batch_size=4, device="cpu", seed=0, progress=False)
    first, records = two_stage_cv(x, y, groups, slice_y, 3, config, "gru", slim=True)
    reused, again = two_stage_cv(x, y, groups, slice_y, 3, config, "gru", slim=True, stage1_from=records)
    assert np.array_equal(first, reused)
    assert all(a["stage1"] is r["stage1"] for a, r in zip(again, records))
    with pytest.raises(ValueError, match="folds are not this call's"):
        two_stage_cv(x, y, groups, slice_y, 3, TrainConfig(**{**config.__dict__, "seed": 5}), "gru", slim=True,
                     stage1_from=records)
