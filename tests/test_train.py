"""Training loop: leakage guard, determinism and resume after an interruption (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from stroke_lib.train import LeakageError, TrainConfig, assert_patient_disjoint, fit, patient_folds


def test_leakage_guard_raises_on_shared_patient():
    with pytest.raises(LeakageError, match="p2"):
        assert_patient_disjoint(["p1", "p2"], ["p2", "p3"])
    y = np.array([0, 1] * 15)
    groups = np.repeat(np.arange(10), 3)
    for tr, te in patient_folds(y, groups, 3, seed=0):
        assert not set(groups[tr]) & set(groups[te])


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 1, 8, 8, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).numpy().astype(int)
    return x, y


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Dropout(0.2), nn.ReLU(), nn.Linear(16, 1))


def test_fit_learns_and_is_deterministic():
    x, y = _data()
    cfg = TrainConfig(epochs=15, patience=20, lr=1e-2, batch_size=8, device="cpu", progress=False)
    a = fit(_model(), x[:30], y[:30], x[30:], y[30:], cfg)
    b = fit(_model(), x[:30], y[:30], x[30:], y[30:], cfg)
    assert a.history.val_loss.min() < a.history.val_loss.iloc[0]  # the kept epoch improved
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


def test_resume_after_epoch_two_gives_same_weights(tmp_path):
    x, y = _data()
    base = dict(patience=20, lr=1e-2, batch_size=8, device="cpu", progress=False)
    full = fit(_model(), x[:30], y[:30], x[30:], y[30:], TrainConfig(epochs=5, **base))
    ckpt = tmp_path / "ckpt"
    fit(_model(), x[:30], y[:30], x[30:], y[30:], TrainConfig(epochs=2, checkpoint_dir=ckpt, **base))
    resumed = fit(_model(), x[:30], y[:30], x[30:], y[30:],
                  TrainConfig(epochs=5, checkpoint_dir=ckpt, resume=True, **base))
    assert resumed.history.epoch.tolist() == [1, 2, 3, 4, 5]
    for pa, pb in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(pa, pb)
