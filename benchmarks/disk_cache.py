"""Benchmark: training from the on-disk cache of 2D slices against training from memory.

    python benchmarks/disk_cache.py [--slices 2048] [--in-plane 64] [--epochs 2] [--repeats 2] [--workers 0 2]

The same random slices (3 windows x ``--in-plane``^2, as chapter 04 reads RSNA ICH 2019)
are written once into a ``stroke_lib.disk_cache`` folder in a temporary directory, then:

- ``build``: writing the cache (``build_disk_cache``, float16 memory-mapped .npy);
- ``read``: every slice once through a ``DataLoader`` (batch 32, shuffled) from the cache
  at each ``--workers`` count, without training, and from the tensors in memory;
- ``train``: ``train.fit`` on a small 2D network (slim ResNet-10, ``baseline("resnet10",
  3, slim=True, spatial_dims=2)``) from the tensors in memory and from the cache at each
  ``--workers`` count: the same batches (same seed), so the same weights on CPU;
  slices/s is ``FitResult.extras["samples_per_s"]`` (training rows per second of the
  training epochs, validation not counted).

"x memory" is the speed against the same measurement from memory. Each figure is the
best of ``--repeats`` runs. The cache was just written, so its pages are in the
operating system's cache: this measures the memory map, the float16 conversion and the
DataLoader, not the disk, which bounds a real 750k-slice cache larger than memory.
The rows go into the benchmark record (``stroke_lib.benchmark_records``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: its bars would mix with the figures

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from stroke_lib.benchmark_records import device_name, write_benchmark
from stroke_lib.disk_cache import Sample, build_disk_cache
from stroke_lib.models import baseline
from stroke_lib.train import TrainConfig, fit

CHANNELS, BATCH, READ_BATCH, VALIDATION_ROWS = 3, 8, 32, 64


def _slices(n: int, in_plane: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, H, W) slices that float16 holds exactly (the cache returns them unchanged) and labels."""
    rng = np.random.default_rng(0)
    x = rng.random((n, CHANNELS, in_plane, in_plane), dtype=np.float32).astype(np.float16).astype(np.float32)
    return x, (x[:, 0].mean(axis=(1, 2)) > 0.5).astype(int)


def _read(data: Dataset, workers: int) -> float:
    """Seconds to read every row once through a shuffled DataLoader."""
    start = time.perf_counter()
    for _ in DataLoader(data, batch_size=READ_BATCH, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0)):
        pass
    return time.perf_counter() - start


def _train(x_train, y_train, x_val, y_val, epochs: int, workers: int) -> float:
    """Training slices/s of ``fit`` (a fresh slim ResNet-10, seed 0)."""
    torch.manual_seed(0)
    model = baseline("resnet10", CHANNELS, slim=True, spatial_dims=2)
    config = TrainConfig(epochs=epochs, patience=epochs, batch_size=BATCH, device="cpu", progress=False,
                         workers=workers)
    return fit(model, x_train, y_train, x_val, y_val, config).extras["samples_per_s"]


def _row(task: str, source: str, workers: int | None, per_s: float, memory: float | None) -> dict:
    return {"task": task, "source": source, "workers": workers, "slices/s": per_s,
            "x memory": per_s / memory if memory else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=2048)
    parser.add_argument("--in-plane", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--record", default=None, help="folder of the record (default benchmarks/records)")
    args = parser.parse_args()
    x, y = _slices(args.slices + VALIDATION_ROWS, args.in_plane)
    n = args.slices
    samples = (Sample(image, int(label), f"p{i // 32}") for i, (image, label) in enumerate(zip(x, y)))
    tensors = torch.from_numpy(x)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cache = build_disk_cache(Path(tmp) / "cache", samples, len(y), {"benchmark": "disk_cache",
                                 "in_plane": args.in_plane}, progress=False)
        rows.append(_row("build", "disk cache", None, len(y) / (time.perf_counter() - start), None))
        train, val = cache.subset(np.arange(n)), cache.subset(np.arange(n, len(y)))
        memory_read = n / min(_read(TensorDataset(tensors[:n], torch.as_tensor(y[:n])), 0)
                              for _ in range(args.repeats))
        rows.append(_row("read", "memory", 0, memory_read, memory_read))
        for workers in args.workers:
            rows.append(_row("read", "disk cache", workers,
                             n / min(_read(train, workers) for _ in range(args.repeats)), memory_read))
        speeds: dict[object, list[float]] = {"memory": [], **{w: [] for w in args.workers}}
        for _ in range(args.repeats):  # taking turns, so that a shared machine's load falls on all alike
            speeds["memory"].append(_train(tensors[:n], y[:n], tensors[n:], y[n:], args.epochs, 0))
            for workers in args.workers:
                speeds[workers].append(_train(train, y[:n], val, y[n:], args.epochs, workers))
        memory_train = max(speeds["memory"])
        rows.append(_row("train", "memory", 0, memory_train, memory_train))
        rows += [_row("train", "disk cache", w, max(speeds[w]), memory_train) for w in args.workers]
    print(f"{device_name('cpu')}, {os.cpu_count()} cores; {n} slices of {CHANNELS} x {args.in_plane}^2, "
          f"slim ResNet-10 2D, batch {BATCH}, {args.epochs} epochs, best of {args.repeats}")
    print(f"{'task':<6} {'source':<11} {'workers':>7} {'slices/s':>9} {'x memory':>8}")
    for r in rows:
        ratio = f"{r['x memory']:8.2f}" if r["x memory"] is not None else f"{'-':>8}"
        workers = "-" if r["workers"] is None else r["workers"]
        print(f"{r['task']:<6} {r['source']:<11} {workers:>7} {r['slices/s']:9.0f} {ratio}")
    write_benchmark("disk_cache", rows, "cpu", vars(args), args.record)


if __name__ == "__main__":
    main()
