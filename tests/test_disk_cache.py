"""The on-disk cache of 2D samples (``stroke_lib.disk_cache``) and ``train.fit`` reading it (CPU)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from stroke_lib.disk_cache import X_FILE, MARKER_FILE, DiskCacheDataset, Sample, build_disk_cache
from stroke_lib.errors import DataError
from stroke_lib.train import TrainConfig, fit, predict

N, C, H, W = 40, 2, 8, 8
SETTINGS = {"dataset": "test", "in_plane": H, "windows": ["brain", "subdural"]}


def _images(seed: int = 0) -> np.ndarray:
    """(N, C, H, W) float32 images that float16 holds exactly, so the cache keeps them as they are."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, C, H, W)).astype(np.float16).astype(np.float32)


def _labels(images: np.ndarray) -> np.ndarray:
    return (images.mean(axis=(1, 2, 3)) > 0).astype(int)


def _samples(images: np.ndarray, seen: list[int] | None = None):
    for i, (image, label) in enumerate(zip(images, _labels(images))):
        if seen is not None:
            seen.append(i)
        yield Sample(image, int(label), f"p{i // 4:02d}", {"slice": i % 4, "scan_id": f"s{i // 4:02d}"})


def _cache(folder, seed: int = 0, settings: dict = SETTINGS, seen: list[int] | None = None) -> DiskCacheDataset:
    return build_disk_cache(folder, _samples(_images(seed), seen), N, settings, progress=False)


class _CNN(nn.Sequential):
    """A tiny 2D CNN with BatchNorm and dropout (both depend on the order of the batches)."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(nn.Conv2d(C, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4, 1))


class _Killed(Exception):
    pass


class _KilledCNN(_CNN):
    """The CNN, killed (an exception) at its ``calls``-th forward pass."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls -= 1
        if self.calls < 0:
            raise _Killed
        return super().forward(x)


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "patience": 20, "lr": 1e-2, "batch_size": 8, "device": "cpu",
                          "progress": False, **kw})


def _fit_cache(data: DiskCacheDataset, model: nn.Module | None = None, **kw):
    train, val = data.subset(np.arange(30)), data.subset(np.arange(30, N))
    return fit(model or _CNN(), train, train.y, val, val.y, _config(**kw))


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(wa, wb), name


def test_the_cache_holds_the_samples_and_their_table(tmp_path):
    data = _cache(tmp_path / "cache")
    images = _images()
    assert len(data) == N and data.settings == SETTINGS
    x, y = data[5]
    assert x.dtype == torch.float32 and x.shape == (C, H, W)
    assert torch.equal(x, torch.from_numpy(images[5])) and y == _labels(images)[5]
    assert data.rows.columns.tolist() == ["patient_id", "slice", "scan_id"]
    assert data.rows.patient_id.iloc[5] == "p01" and data.rows.slice.iloc[5] == 1
    part = data.subset(np.arange(N) % 2 == 1)
    assert len(part) == N // 2 and part.rows.slice.tolist()[:2] == [1, 3]
    assert torch.equal(part[0][0], torch.from_numpy(images[1]))
    np.testing.assert_array_equal(part.subset([2]).y, _labels(images)[[5]])


def test_the_cache_gives_the_batches_and_weights_of_the_tensors(tmp_path):
    data = _cache(tmp_path / "cache")
    x, y = torch.from_numpy(_images()), _labels(_images())
    memory = fit(_CNN(), x[:30], y[:30], x[30:], y[30:], _config())
    cached = _fit_cache(data)
    assert memory.extras["path"] == "plain"
    assert cached.extras["path"] == "plain, rows from a dataset (0 DataLoader workers)"
    pd.testing.assert_frame_equal(memory.history, cached.history)
    _assert_same_weights(memory.model, cached.model)
    for result in (memory, cached):
        assert 0 < result.extras["samples_per_s"] < float("inf")
    np.testing.assert_array_equal(predict(cached.model, data, 8, "cpu"), predict(memory.model, x, 8, "cpu"))


def test_the_fast_path_reads_the_cache_to_the_same_weights(tmp_path):
    data = _cache(tmp_path / "cache")
    x, y = torch.from_numpy(_images()), _labels(_images())
    memory = fit(_CNN(), x[:30], y[:30], x[30:], y[30:], _config(fast=True))
    cached = _fit_cache(data, fast=True)
    assert "inputs on the device" not in cached.extras["path"]
    _assert_same_weights(memory.model, cached.model)


def test_two_workers_give_the_weights_of_none(tmp_path):
    data = _cache(tmp_path / "cache")
    main = _fit_cache(data)
    workers = _fit_cache(data, workers=2)
    assert workers.extras["path"].endswith("(2 DataLoader workers)")
    pd.testing.assert_frame_equal(main.history, workers.history)
    _assert_same_weights(main.model, workers.model)


def test_a_run_stopped_after_two_of_four_epochs_resumes_to_the_same_weights(tmp_path):
    data = _cache(tmp_path / "cache")
    full = _fit_cache(data, epochs=4, cosine=True, checkpoint_dir=tmp_path / "full")
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Killed):  # 3 training and 2 validation batches per epoch: killed in epoch 3
        _fit_cache(data, _KilledCNN(calls=11), epochs=4, cosine=True, checkpoint_dir=ckpt)
    assert torch.load(ckpt / "last.pt", weights_only=False)["epoch"] == 1  # epochs 1 and 2 saved
    resumed = _fit_cache(data, epochs=4, cosine=True, checkpoint_dir=ckpt, resume=True)
    assert resumed.history.epoch.tolist() == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(resumed.history, full.history)
    _assert_same_weights(full.model, resumed.model)
    last_full = torch.load(tmp_path / "full" / "last.pt", weights_only=False)["model"]
    last_resumed = torch.load(ckpt / "last.pt", weights_only=False)["model"]
    for name, value in last_full.items():
        assert torch.equal(value, last_resumed[name]), name


def test_a_complete_cache_is_reused_and_a_changed_setting_rebuilds_it(tmp_path):
    folder = tmp_path / "cache"
    _cache(folder)
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    seen: list[int] = []
    again = _cache(folder, seed=1, seen=seen)  # other images, same settings: the files are kept
    assert seen == []  # not one sample read
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written
    assert torch.equal(again[0][0], torch.from_numpy(_images(0)[0]))
    rebuilt = _cache(folder, seed=1, settings={**SETTINGS, "windows": ["brain", "bone"]}, seen=seen)
    assert len(seen) == N
    assert rebuilt.settings["windows"] == ["brain", "bone"]
    assert torch.equal(rebuilt[0][0], torch.from_numpy(_images(1)[0]))


def test_an_interrupted_build_is_not_complete_and_is_rebuilt(tmp_path):
    folder = tmp_path / "cache"

    def broken():
        samples = _samples(_images())
        for _ in range(10):
            yield next(samples)
        raise OSError("the source disk went away")

    with pytest.raises(OSError):
        build_disk_cache(folder, broken(), N, SETTINGS, progress=False)
    with pytest.raises(DataError, match=MARKER_FILE):
        DiskCacheDataset(folder)
    seen: list[int] = []
    assert len(_cache(folder, seen=seen)) == N and len(seen) == N


def test_a_truncated_image_file_raises_a_data_error_naming_it(tmp_path):
    folder = tmp_path / "cache"
    _cache(folder)
    path = folder / X_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=X_FILE) as err:
        DiskCacheDataset(folder)
    assert err.value.path == path
    with pytest.raises(DataError, match=X_FILE):  # the marker matches: reused, and refused
        _cache(folder)


def test_samples_that_do_not_fit_the_cache_are_refused(tmp_path):
    images = _images()
    with pytest.raises(ValueError, match="39 samples"):
        build_disk_cache(tmp_path / "short", _samples(images[:-1]), N, SETTINGS, progress=False)
    with pytest.raises(ValueError, match="more than"):
        build_disk_cache(tmp_path / "long", _samples(images), N - 1, SETTINGS, progress=False)
    raw_hu = images.copy()
    raw_hu[3] *= 1e5
    with pytest.raises(ValueError, match="sample 3 .*float16"):
        build_disk_cache(tmp_path / "hu", _samples(raw_hu), N, SETTINGS, progress=False)
