"""Training loop: leakage guard, determinism and resume after an interruption (CPU)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from stroke_lib.datasets import augmentation
from stroke_lib.train import (
    LeakageError, TrainConfig, assert_patient_disjoint, fit, patient_folds, train_and_test,
)


def test_leakage_guard_raises_on_shared_patient():
    with pytest.raises(LeakageError, match="p2"):
        assert_patient_disjoint(["p1", "p2"], ["p2", "p3"])
    y = np.array([0, 1] * 15)
    groups = np.repeat(np.arange(10), 3)
    for tr, te in patient_folds(y, groups, 3, seed=0):
        assert not set(groups[tr]) & set(groups[te])


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 1, 8, 8, 8, generator=g)
    y = (x.mean(dim=(1, 2, 3, 4)) > 0).numpy().astype(int)
    return x, y


def _unseeded_model():
    return nn.Sequential(nn.Flatten(), nn.Linear(512, 16), nn.Dropout(0.2), nn.ReLU(), nn.Linear(16, 1))


def _model():
    torch.manual_seed(0)
    return _unseeded_model()


def test_fit_learns_and_is_deterministic():
    x, y = _data()
    cfg = TrainConfig(epochs=15, patience=20, lr=1e-2, batch_size=8, device="cpu", progress=False)
    a = fit(_model(), x[:30], y[:30], x[30:], y[30:], cfg)
    b = fit(_model(), x[:30], y[:30], x[30:], y[30:], cfg)
    assert a.history.val_loss.min() < a.history.val_loss.iloc[0]  # the kept epoch improved
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


class _Killed(Exception):
    pass


class _KilledAfter(nn.Sequential):
    """The test network, killed (an exception) at its ``calls``-th forward pass."""

    def __init__(self, calls: int):
        torch.manual_seed(0)
        super().__init__(*_unseeded_model())
        self.calls = calls

    def forward(self, x):
        self.calls -= 1
        if self.calls < 0:
            raise _Killed
        return super().forward(x)


@pytest.mark.parametrize("augmented", [False, True])
def test_resume_after_epoch_two_gives_same_weights(tmp_path, augmented):
    x, y = _data()

    def config(**kw):
        extra = {"augment": augmentation(), "cosine": True} if augmented else {}
        return TrainConfig(epochs=5, patience=20, lr=1e-2, batch_size=8, device="cpu", progress=False,
                           **extra, **kw)

    full = fit(_model(), x[:30], y[:30], x[30:], y[30:], config(checkpoint_dir=tmp_path / "full"))
    ckpt = tmp_path / "ckpt"
    # 3 training batches and 2 validation batches per epoch: killed in epoch 3
    with pytest.raises(_Killed):
        fit(_KilledAfter(calls=11), x[:30], y[:30], x[30:], y[30:], config(checkpoint_dir=ckpt))
    assert torch.load(ckpt / "last.pt", weights_only=False)["epoch"] == 1  # epochs 1 and 2 saved
    resumed = fit(_model(), x[:30], y[:30], x[30:], y[30:], config(checkpoint_dir=ckpt, resume=True))
    assert resumed.history.epoch.tolist() == [1, 2, 3, 4, 5]
    pd.testing.assert_frame_equal(resumed.history, full.history)
    for pa, pb in zip(full.model.parameters(), resumed.model.parameters()):  # best epoch
        assert torch.equal(pa, pb)
    last_full = torch.load(tmp_path / "full" / "last.pt", weights_only=False)["model"]
    last_resumed = torch.load(ckpt / "last.pt", weights_only=False)["model"]
    for name, value in last_full.items():  # last epoch
        assert torch.equal(value, last_resumed[name]), name


def test_augmentation_is_applied_and_seeded():
    x, y = _data()
    base = dict(epochs=3, patience=20, lr=1e-2, batch_size=8, device="cpu", progress=False)
    plain = fit(_model(), x[:30], y[:30], x[30:], y[30:], TrainConfig(**base))
    aug_a = fit(_model(), x[:30], y[:30], x[30:], y[30:], TrainConfig(augment=augmentation(), **base))
    aug_b = fit(_model(), x[:30], y[:30], x[30:], y[30:], TrainConfig(augment=augmentation(), **base))
    assert not torch.equal(plain.model[1].weight, aug_a.model[1].weight)
    assert torch.equal(aug_a.model[1].weight, aug_b.model[1].weight)


def test_train_and_test_weights_depend_on_the_seed_only():
    x, y = _data()
    groups = np.arange(30)
    cfg = TrainConfig(epochs=2, patience=5, batch_size=8, device="cpu", progress=False, seed=3)
    a = train_and_test(_unseeded_model, x[:30], y[:30], groups, x[30:], cfg)
    torch.manual_seed(12345)  # a different global random state before the second run
    b = train_and_test(_unseeded_model, x[:30], y[:30], groups, x[30:], cfg)
    assert np.array_equal(a["score_test"], b["score_test"])


def test_augmentation_inside_fit_makes_plain_tensors_with_the_same_values():
    """``fit`` augments with MONAI's metadata tracking off: the same samples as with it on,
    and the global setting is restored afterwards, also after an error."""
    from monai.data import MetaTensor, get_track_meta

    from stroke_lib.train import _plain_tensors

    x = torch.randn(2, 12, 12, 12)
    tracked = augmentation(spatial_size=(12, 12, 12), flip=True)
    plain = augmentation(spatial_size=(12, 12, 12), flip=True)
    tracked.set_random_state(3)
    plain.set_random_state(3)
    with_meta = [tracked(x) for _ in range(6)]
    with _plain_tensors():
        without = [plain(x) for _ in range(6)]
    assert all(isinstance(a, MetaTensor) for a in with_meta)
    assert not any(isinstance(b, MetaTensor) for b in without)
    assert all(torch.equal(a.as_tensor(), b) for a, b in zip(with_meta, without))
    assert get_track_meta()
    with pytest.raises(RuntimeError), _plain_tensors():
        raise RuntimeError("inside")
    assert get_track_meta()
