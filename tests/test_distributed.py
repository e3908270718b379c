"""Data-parallel training and spread folds on two gloo processes (CPU), against one process.

Two processes, each with half of every global batch of 8 rows, average their gradients
(DistributedDataParallel); one process of a process group of one trains the same global
batches whole. Their weights agree within 1e-5 (absolute and relative; float sums in
another order). The network has no dropout and no BatchNorm: a dropout mask or batch
statistics of half a batch are not those of the whole, so with them the two runs would
legitimately differ.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from stroke_lib import distributed
from stroke_lib.train import TrainConfig, cross_validate, fit
from tests.test_train import _data, _unseeded_model

TOLERANCE = 1e-5


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(512, 16), nn.ReLU(), nn.Linear(16, 1))


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 4, "patience": 20, "lr": 1e-2, "batch_size": 8, "device": "cpu",
                          "progress": False, **kw})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    assert distributed.init("gloo")


def _runs(tmp: Path) -> dict:
    """What each process computes: one fit, one fit resumed, cross-validation spread."""
    x, y = _data()
    out = {"fit": fit(_model(), x[:32], y[:32], x[32:], y[32:], _config()).model.state_dict()}
    fit(_model(), x[:32], y[:32], x[32:], y[32:], _config(checkpoint_dir=tmp / "full"))
    fit(_model(), x[:32], y[:32], x[32:], y[32:], _config(epochs=2, checkpoint_dir=tmp / "cut"))
    fit(_model(), x[:32], y[:32], x[32:], y[32:], _config(checkpoint_dir=tmp / "cut", resume=True))
    scores, folds = cross_validate(_unseeded_model, x, y, np.arange(40) // 2, 2, _config(epochs=2))
    out["cv"] = scores, [f["fit"].model.state_dict() for f in folds]
    return out


def _worker(rank: int, world: int, port: int, tmp: str) -> None:
    _join(rank, world, port)
    try:
        torch.save(_runs(Path(tmp) / "ckpt"), Path(tmp) / f"rank{rank}.pt")
    finally:
        distributed.close()


def test_two_gloo_processes_train_like_one(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]

    _join(0, 1, _free_port())  # the reference: one process, the same global batches
    try:
        x, y = _data()
        one = fit(_model(), x[:32], y[:32], x[32:], y[32:], _config())
        assert "data-parallel on 1 processes" in one.extras["path"]
    finally:
        distributed.close()
    for name, value in one.model.state_dict().items():
        torch.testing.assert_close(ranks[0]["fit"][name], value, atol=TOLERANCE, rtol=TOLERANCE)
        assert torch.equal(ranks[0]["fit"][name], ranks[1]["fit"][name])  # every process the same
    assert not torch.equal(one.model[1].weight, _model()[1].weight)  # it did train

    # rank 0 wrote the checkpoints, with both processes' random states; a run resumed
    # after epoch 2 ends where the uninterrupted one does
    full = torch.load(tmp_path / "ckpt" / "full" / "last.pt", weights_only=False)
    cut = torch.load(tmp_path / "ckpt" / "cut" / "last.pt", weights_only=False)
    assert len(full["ranks"]) == 2 and cut["epoch"] == full["epoch"] == 3
    pd.testing.assert_frame_equal(pd.DataFrame(cut["history"]), pd.DataFrame(full["history"]))
    for name, value in full["model"].items():
        assert torch.equal(cut["model"][name], value), name

    # folds spread over the two processes: the scores of one process without a group
    x, y = _data()
    scores, folds = cross_validate(_unseeded_model, x, y, np.arange(40) // 2, 2, _config(epochs=2))
    for r in ranks:
        assert np.array_equal(r["cv"][0], scores)
        for fold, state in zip(folds, r["cv"][1]):
            for name, value in fold["fit"].model.state_dict().items():
                assert torch.equal(state[name], value), name
    assert not dist.is_initialized()
