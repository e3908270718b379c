"""The fast path of ``train.fit`` against the plain path (the reference), on CPU.

On CPU the fast path runs its device-resident inputs (the CPU is the device), its index
batches, its on-device loss sum and channels-last memory; bf16 autocast and torch.compile
are CUDA-only and not exercised here.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from stroke_lib.datasets import augmentation
from stroke_lib.train import TrainConfig, fit
from tests.test_train import _data, _Killed, _KilledAfter, _model


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 4, "patience": 20, "lr": 1e-2, "batch_size": 8, "device": "cpu",
                          "progress": False, "augment": augmentation(), "cosine": True, **kw})


def _conv_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1, bias=False), nn.BatchNorm3d(4), nn.ReLU(),
                         nn.Conv3d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                         nn.Flatten(), nn.Dropout(0.2), nn.Linear(4, 1))


def test_fast_path_gives_the_plain_weights_exactly():
    x, y = _data()
    plain = fit(_model(), x[:30], y[:30], x[30:], y[30:], _config(fast=False))
    fast = fit(_model(), x[:30], y[:30], x[30:], y[30:], _config(fast=True))
    assert plain.extras["path"] == "plain"
    assert fast.extras["path"].startswith("fast (inputs on the device")
    assert "torch.compile" not in fast.extras["path"]  # off on CPU
    pd.testing.assert_frame_equal(plain.history, fast.history)
    for (name, a), b in zip(plain.model.state_dict().items(), fast.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_channels_last_convolutions_match_within_float_rounding():
    """Channels-last 3D convolutions sum in another order: weights agree to 1e-5, not bit for bit."""
    x, y = _data()
    plain = fit(_conv_model(), x[:30], y[:30], x[30:], y[30:], _config(fast=False))
    fast = fit(_conv_model(), x[:30], y[:30], x[30:], y[30:], _config(fast=True))
    assert "channels-last" in fast.extras["path"]
    assert plain.best_epoch == fast.best_epoch
    for (name, a), b in zip(plain.model.state_dict().items(), fast.model.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5, msg=name)
            assert b.is_contiguous(), name  # handed back in the default memory format
    before = plain.history.train_loss.to_numpy()
    assert abs(fast.history.train_loss.to_numpy() - before).max() < 1e-5


def test_fast_path_resumes_to_the_same_weights(tmp_path):
    x, y = _data()
    full = fit(_model(), x[:30], y[:30], x[30:], y[30:], _config(fast=True, checkpoint_dir=tmp_path / "full"))
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Killed):  # 3 training and 2 validation batches per epoch: killed in epoch 3
        fit(_KilledAfter(calls=11), x[:30], y[:30], x[30:], y[30:], _config(fast=True, checkpoint_dir=ckpt))
    resumed = fit(_model(), x[:30], y[:30], x[30:], y[30:], _config(fast=True, checkpoint_dir=ckpt, resume=True))
    pd.testing.assert_frame_equal(resumed.history, full.history)
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_a_failed_compilation_falls_back_to_eager_mode_and_says_so(monkeypatch):
    calls = []

    def broken_compile(model, **kwargs):
        def compiled(x):
            calls.append(x.shape)
            raise torch._dynamo.exc.TorchDynamoException("no working backend")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    x, y = _data()
    eager = fit(_model(), x[:30], y[:30], x[30:], y[30:], _config(fast=True, compile=False))
    fallen = fit(_model(), x[:30], y[:30], x[30:], y[30:], _config(fast=True, compile=True))
    assert len(calls) == 1  # tried once, then eager for the rest of the run
    assert "torch.compile" not in fallen.extras["path"]
    assert "torch.compile failed (TorchDynamoException)" in fallen.extras["compile_notes"][0]
    assert not eager.extras["compile_notes"]
    for a, b in zip(eager.model.parameters(), fallen.model.parameters()):
        assert torch.equal(a, b)
