"""Benchmark: training steps/s and samples/s of ``train.fit`` against the MONAI-tutorial loop.

    python benchmarks/training_loop.py [--samples 16] [--epochs 2] [--repeats 2] [--models NAME ...] [--size smoke|full]

Same networks (the slim chapter-01 baselines and slim TRACT-NET at 1 x 48^3, one input
channel as the chapters read DWI alone; slim CTNet at 56 x 32 x 32, the 28 slices of two
windows as channels; the slim slice CNN + GRU of chapter 04 at 3 x 32 x 32 x 14; MONAI's
SE-ResNeXt-50 in 2D, paper 004's network, at 3 x 64 x 64), same random data at each
network's smoke input (``--size full``: the full profile's inputs, for a GPU; its record
is ``training_loop_full``), same batch (8),
same augmentation (``stroke_lib.datasets.augmentation``), same optimiser (AdamW), the
same validation pass over 4 rows after every epoch, measured side by side in one run after
one untimed forward and backward pass of each network:

- ``tutorial``: the plain loop of the MONAI tutorials: a ``Dataset`` that augments each
  sample on the CPU in ``__getitem__``, a ``DataLoader`` (``--workers`` processes; 0 on
  CPU, where the workers would only compete for the same cores), fp32, default memory
  layout, the loss read back every step;
- ``fit``: ``stroke_lib.train.fit`` as the chapters call it (on CPU its plain path; on
  CUDA its fast path: inputs on the GPU, augmentation there, bf16, channels-last,
  torch.compile where it applies);
- on CUDA also ``fit, no compile`` (the fast path without torch.compile), since a run this
  short pays the compilation inside its time.

Each figure is the fastest of ``--repeats`` whole runs (``--epochs`` epochs, for compiled
runs the compilation included), the loops taking turns so that a shared machine's load
falls on both alike, divided into its steps; the ratio is against the tutorial loop of
the same network. Peak memory is CUDA's ``max_memory_allocated`` (not measured on CPU).
The rows go into the benchmark record (``stroke_lib.benchmark_records``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from monai.networks.nets import SEResNext50
from monai.utils import convert_to_tensor
from torch import nn
from torch.utils.data import DataLoader, Dataset

from stroke_lib.benchmark_records import device_name, write_benchmark
from stroke_lib.datasets import augmentation
from stroke_lib.models import baseline, ctnet, slice_classifier, tractnet
from stroke_lib.train import TrainConfig, fit, predict

#: name -> (factory, input (C, *spatial) at the smoke profile's size, at the full one).
NETWORKS = {
    "densenet-slim": (lambda: baseline("densenet", 1, slim=True), (1, 48, 48, 48), (1, 128, 128, 64)),
    "resnet10-slim": (lambda: baseline("resnet10", 1, slim=True), (1, 48, 48, 48), (1, 128, 128, 64)),
    "tractnet-slim": (lambda: tractnet(1, slim=True), (1, 48, 48, 48), (1, 128, 128, 64)),
    "ctnet-slim": (lambda: ctnet(56, slim=True), (56, 32, 32), (56, 128, 128)),
    "cnn-gru-slim": (lambda: slice_classifier(3, 1, "gru", slim=True), (3, 32, 32, 14), (3, 128, 128, 14)),
    "se-resnext50-2d": (lambda: SEResNext50(spatial_dims=2, in_channels=3, num_classes=1, pretrained=False),
                        (3, 64, 64), (3, 256, 256)),
}
BATCH = 8
VALIDATION_ROWS = 4


def augment_for(x: torch.Tensor):
    """The book's augmentation for inputs shaped like ``x`` (N, C, *spatial), 2D or 3D."""
    return augmentation(spatial_dims=x.ndim - 2, spatial_size=tuple(x.shape[2:]))


class AugmentedTensors(Dataset):
    """(C, X, Y, Z) samples augmented on the CPU each time one is drawn, with their labels
    (plain tensors: a MONAI ``MetaTensor`` would slow every operation of the network)."""

    def __init__(self, x: torch.Tensor, y: np.ndarray, seed: int) -> None:
        self.x, self.y = x, torch.as_tensor(y, dtype=torch.float32)
        self.augment = augment_for(x)
        self.augment.set_random_state(seed=seed)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return convert_to_tensor(self.augment(self.x[i]), track_meta=False), self.y[i]


def tutorial_loop(model: nn.Module, x: torch.Tensor, y: np.ndarray, x_val: torch.Tensor, epochs: int,
                  device: str, workers: int) -> int:
    """The MONAI-tutorial training loop; returns the number of optimiser steps."""
    model = model.to(device)
    loader = DataLoader(AugmentedTensors(x, y, seed=0), batch_size=BATCH, shuffle=True, drop_last=True,
                        num_workers=workers, pin_memory=device == "cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    steps = 0
    for _ in range(epochs):
        model.train()
        epoch_loss = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad()
            loss = loss_fn(model(xb).reshape(-1), yb)
            loss.backward()
            opt.step()
            epoch_loss += loss.item()
            steps += 1
        predict(model, x_val, BATCH, device, amp=False)
    return steps


def warm_up(name: str, x: torch.Tensor, device: str) -> None:
    """One untimed forward and backward pass of a batch, so that neither loop pays the
    first-call costs (kernel selection, allocator growth) the other does not."""
    torch.manual_seed(0)
    model = NETWORKS[name][0]().to(device).train()
    model(x[:BATCH].to(device)).sum().backward()
    augment_for(x)(x[0])
    if device == "cuda":
        torch.cuda.synchronize()


def run(name: str, loop: str, x: torch.Tensor, y: np.ndarray, epochs: int, device: str, workers: int) -> dict:
    """One network trained by one loop: steps, seconds, steps/s, samples/s, peak memory."""
    torch.manual_seed(0)
    model = NETWORKS[name][0]()
    x_tr, y_tr, x_val, y_val = x[VALIDATION_ROWS:], y[VALIDATION_ROWS:], x[:VALIDATION_ROWS], y[:VALIDATION_ROWS]
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if loop == "tutorial":
        steps = tutorial_loop(model, x_tr, y_tr, x_val, epochs, device, workers)
    else:
        config = TrainConfig(epochs=epochs, patience=epochs, lr=1e-3, batch_size=BATCH, device=device,
                             progress=False, augment=augment_for(x), compile=False if "no compile" in loop else None)
        fit(model, x_tr, y_tr, x_val, y_val, config)
        steps = epochs * (len(y_tr) // BATCH)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"network": name, "loop": loop, "steps": steps, "seconds": seconds, "steps/s": steps / seconds,
            "samples/s": steps * BATCH / seconds,
            "peak MiB": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=16, help="training rows (plus 4 for validation)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each loop; the fastest is shown")
    parser.add_argument("--models", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--workers", type=int, default=None, help="tutorial DataLoader workers (CPU 0, CUDA 4)")
    parser.add_argument("--size", choices=("smoke", "full"), default="smoke", help="the profiles' input sizes")
    parser.add_argument("--record", default=None, help="folder of the record (default benchmarks/records)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    workers = args.workers if args.workers is not None else (4 if device == "cuda" else 0)
    n = args.samples - args.samples % BATCH + VALIDATION_ROWS
    y = np.arange(n) % 2
    loops = ["tutorial", "fit"] + (["fit, no compile"] if device == "cuda" else [])
    print(f"device: {device_name(device)}; batch {BATCH}, {n - VALIDATION_ROWS} training rows, {args.epochs} epochs, "
          f"tutorial workers {workers}, fastest of {args.repeats} runs")
    print(f"{'network':<15} {'input':<12} {'loop':<16} {'steps':>5} {'seconds':>8} {'steps/s':>8} {'samples/s':>9} "
          f"{'x tutorial':>10} {'peak MiB':>9}")
    records = []
    for net in args.models:
        shape = NETWORKS[net][1 if args.size == "smoke" else 2]
        x = torch.randn(n, *shape, generator=torch.Generator().manual_seed(0))
        warm_up(net, x, device)
        runs = [[run(net, loop, x, y, args.epochs, device, workers) for loop in loops]
                for _ in range(args.repeats)]
        rows = [min((r[i] for r in runs), key=lambda r: r["seconds"]) for i in range(len(loops))]
        for r in rows:
            r |= {"input": "x".join(map(str, shape)), "x tutorial": r["steps/s"] / rows[0]["steps/s"]}
            print(f"{r['network']:<15} {r['input']:<12} {r['loop']:<16} {r['steps']:>5} {r['seconds']:>8.2f} "
                  f"{r['steps/s']:>8.3f} {r['samples/s']:>9.2f} {r['x tutorial']:>10.2f} {r['peak MiB']:>9.0f}",
                  flush=True)
        records += rows
    write_benchmark("training_loop" if args.size == "smoke" else "training_loop_full", records, device, vars(args),
                    args.record)


if __name__ == "__main__":
    main()
