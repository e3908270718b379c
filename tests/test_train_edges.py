"""The training engine at its edges: the loss of the rows used, atomic checkpoints, a
damaged checkpoint on resume, and splits that cannot give every fold both classes."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import stroke_lib.train as train
from stroke_lib.train import SplitError, TrainConfig, cross_validate, fit, patient_folds, train_and_test
from tests.test_train import _data, _model, _unseeded_model


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "patience": 20, "lr": 1e-2, "batch_size": 8, "device": "cpu",
                          "progress": False, **kw})


def test_constant_model_reports_log_2():
    # 30 rows in batches of 8 with drop_last: 24 rows are used per epoch
    x, y = _data()
    model = nn.Sequential(nn.Flatten(), nn.Linear(512, 1))
    nn.init.zeros_(model[1].weight)
    nn.init.zeros_(model[1].bias)
    result = fit(model, x[:30], y[:30], x[30:], y[30:], _config(lr=0.0, weight_decay=0.0, balance=False))
    assert result.history.train_loss.to_numpy() == pytest.approx(math.log(2), abs=1e-6)
    assert result.history.val_loss.to_numpy() == pytest.approx(math.log(2), abs=1e-6)


def test_labels_must_be_0_and_1():
    x, y = _data()
    with pytest.raises(ValueError, match="only 0 and 1"):
        fit(_model(), x[:30], np.where(y[:30] == 1, 0.9, 0.2), x[30:], y[30:], _config())


def test_a_failed_save_leaves_the_last_checkpoint_intact(tmp_path, monkeypatch):
    x, y = _data()
    real_save, calls = torch.save, []

    def save_then_fail(obj, f, *args, **kwargs):
        calls.append(obj.get("epoch"))
        if "optimizer" in obj and obj["epoch"] == 1:  # the last checkpoint of epoch 2
            with open(f, "wb") if isinstance(f, (str, bytes)) or hasattr(f, "__fspath__") else f as out:
                out.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(OSError, match="No space"):
        fit(_model(), x[:30], y[:30], x[30:], y[30:], _config(checkpoint_dir=tmp_path))
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(tmp_path / "last.pt", weights_only=False)["epoch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary left


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_last_checkpoint_falls_back_to_the_previous_one(tmp_path):
    x, y = _data()
    full = fit(_model(), x[:30], y[:30], x[30:], y[30:], _config(epochs=5, checkpoint_dir=tmp_path / "full"))
    ckpt = tmp_path / "ckpt"
    fit(_model(), x[:30], y[:30], x[30:], y[30:], _config(epochs=3, checkpoint_dir=ckpt))
    _truncate(ckpt / "last.pt")
    resumed = fit(_model(), x[:30], y[:30], x[30:], y[30:],
                  _config(epochs=5, checkpoint_dir=ckpt, resume=True))
    notes = resumed.extras["checkpoint_notes"]
    assert str(ckpt / "last.pt") in notes[0] and "damaged" in notes[0]
    assert str(ckpt / "previous.pt") in notes[0] and "epoch 2" in notes[0]
    pd.testing.assert_frame_equal(resumed.history, full.history)  # epoch 3 trained again, same result
    for pa, pb in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(pa, pb)


def test_all_checkpoints_damaged_starts_afresh_and_says_so(tmp_path):
    x, y = _data()
    fresh = fit(_model(), x[:30], y[:30], x[30:], y[30:], _config())
    fit(_model(), x[:30], y[:30], x[30:], y[30:], _config(checkpoint_dir=tmp_path))
    _truncate(tmp_path / "last.pt")
    (tmp_path / "previous.pt").write_bytes(b"")
    again = fit(_model(), x[:30], y[:30], x[30:], y[30:], _config(checkpoint_dir=tmp_path, resume=True))
    assert "starting afresh" in again.extras["checkpoint_notes"][-1]
    assert str(tmp_path / "previous.pt") in " ".join(again.extras["checkpoint_notes"])
    pd.testing.assert_frame_equal(again.history, fresh.history)


def test_fewer_positive_patients_than_folds_fails_naming_the_counts():
    y = np.repeat(np.r_[np.ones(2, int), np.zeros(10, int)], 2)  # 2 positive patients, 2 scans each
    groups = np.repeat(np.arange(12), 2)
    with pytest.raises(SplitError, match=r"3 folds.*2 positive and 10 negative patients") as err:
        patient_folds(y, groups, n_splits=3, seed=0)
    message = str(err.value)
    assert len(re.findall(r"fold \d: test \d+ positive / \d+ negative", message)) == 3
    assert re.search(r"fold \d: test 0 positive", message) and "at most 2 folds" in message


def _three_positive_patients():
    x, _ = _data()
    y = np.r_[np.ones(3, int), np.zeros(27, int)]
    return x[:30], y, np.arange(30)


def test_inner_validation_always_holds_both_classes():
    # with seed 3 the first of scikit-learn's five inner folds has no positive patient
    x, y, groups = _three_positive_patients()
    out = train_and_test(_unseeded_model, x, y, groups, x[:4], _config(epochs=1, seed=3))
    assert set(out["y_val"]) == {0, 1}


def test_inner_validation_impossible_fails_naming_the_counts():
    x, y, groups = _three_positive_patients()
    y[1:3] = 0  # one positive patient: it cannot be in training and validation at once
    with pytest.raises(SplitError, match="inner validation.*1 positive patient"):
        train_and_test(_unseeded_model, x, y, groups, x[:4], _config(epochs=1))


def test_cross_validation_checks_every_inner_split_before_training(monkeypatch):
    # two folds, two positive patients: each training part keeps one, too few for an
    # inner validation split with both classes
    x, y, groups = _three_positive_patients()
    y[2] = 0
    trained = []
    monkeypatch.setattr(train, "fit", lambda *a, **k: trained.append(1))
    with pytest.raises(SplitError, match="training part of fold 1.*inner validation"):
        cross_validate(_unseeded_model, x, y, groups, 2, _config(epochs=1))
    assert not trained
