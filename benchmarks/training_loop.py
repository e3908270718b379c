"""Benchmark: training steps/s and samples/s of ``train.fit`` against the MONAI-tutorial loop.

    python benchmarks/training_loop.py [--samples 16] [--epochs 2] [--repeats 2] [--models NAME ...]

Same networks (the slim chapter-01 baselines and slim TRACT-NET, one input channel as the
chapters read DWI alone), same random data at the smoke input (1 x 48^3), same batch (8),
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
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from monai.utils import convert_to_tensor
from torch import nn
from torch.utils.data import DataLoader, Dataset

from stroke_lib.datasets import augmentation
from stroke_lib.models import baseline, tractnet
from stroke_lib.train import TrainConfig, fit, predict

NETWORKS = {
    "densenet-slim": lambda: baseline("densenet", 1, slim=True),
    "resnet10-slim": lambda: baseline("resnet10", 1, slim=True),
    "tractnet-slim": lambda: tractnet(1, slim=True),
}
SMOKE_INPUT = (48, 48, 48)
BATCH = 8
VALIDATION_ROWS = 4


class AugmentedTensors(Dataset):
    """(C, X, Y, Z) samples augmented on the CPU each time one is drawn, with their labels
    (plain tensors: a MONAI ``MetaTensor`` would slow every operation of the network)."""

    def __init__(self, x: torch.Tensor, y: np.ndarray, seed: int) -> None:
        self.x, self.y = x, torch.as_tensor(y, dtype=torch.float32)
        self.augment = augmentation()
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
    model = NETWORKS[name]().to(device).train()
    model(x[:BATCH].to(device)).sum().backward()
    augmentation()(x[0])
    if device == "cuda":
        torch.cuda.synchronize()


def run(name: str, loop: str, x: torch.Tensor, y: np.ndarray, epochs: int, device: str, workers: int) -> dict:
    """One network trained by one loop: steps, seconds, steps/s, samples/s, peak memory."""
    torch.manual_seed(0)
    model = NETWORKS[name]()
    x_tr, y_tr, x_val, y_val = x[VALIDATION_ROWS:], y[VALIDATION_ROWS:], x[:VALIDATION_ROWS], y[:VALIDATION_ROWS]
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if loop == "tutorial":
        steps = tutorial_loop(model, x_tr, y_tr, x_val, epochs, device, workers)
    else:
        config = TrainConfig(epochs=epochs, patience=epochs, lr=1e-3, batch_size=BATCH, device=device,
                             progress=False, augment=augmentation(), compile=False if "no compile" in loop else None)
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
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    workers = args.workers if args.workers is not None else (4 if device == "cuda" else 0)
    g = torch.Generator().manual_seed(0)
    n = args.samples - args.samples % BATCH + VALIDATION_ROWS
    x = torch.randn(n, 1, *SMOKE_INPUT, generator=g)
    y = np.arange(n) % 2
    loops = ["tutorial", "fit"] + (["fit, no compile"] if device == "cuda" else [])
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; input 1x{'x'.join(map(str, SMOKE_INPUT))}, batch {BATCH}, "
          f"{n - VALIDATION_ROWS} training rows, {args.epochs} epochs, tutorial workers {workers}, "
          f"fastest of {args.repeats} runs")
    print(f"{'network':<15} {'loop':<16} {'steps':>5} {'seconds':>8} {'steps/s':>8} {'samples/s':>9} "
          f"{'x tutorial':>10} {'peak MiB':>9}")
    for net in args.models:
        warm_up(net, x, device)
        runs = [[run(net, loop, x, y, args.epochs, device, workers) for loop in loops]
                for _ in range(args.repeats)]
        rows = [min((r[i] for r in runs), key=lambda r: r["seconds"]) for i in range(len(loops))]
        for r in rows:
            print(f"{r['network']:<15} {r['loop']:<16} {r['steps']:>5} {r['seconds']:>8.2f} {r['steps/s']:>8.3f} "
                  f"{r['samples/s']:>9.2f} {r['steps/s'] / rows[0]['steps/s']:>10.2f} {r['peak MiB']:>9.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
