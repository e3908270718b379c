"""Benchmark: parameters, forward+backward time per batch and peak memory of the networks.

    python benchmarks/models_speed.py [--batch 8] [--repeats 3] [--models NAME ...]

On CPU, every network at its smoke input: TRACT-NET slim and full and the chapter-01
baselines slim and full at 2 channels x 48^3; CTNet (2D, the 28 slices of two windows as
56 channels, 40 x 40), its 3D ablation (2 x 40 x 40 x 28) and the correlation-learning CNN
(chapter 03); the slice CNN + bidirectional GRU of chapter 04, slim and full (3 windows x
32 x 32 x 14 slices); and MONAI's SE-ResNeXt-50 in 2D (paper 004's network, 3 x 128 x
128). On CUDA (when present) also the networks that are not slim at their full input (2 x
128 x 128 x 64; CTNet 56 x 128 x 128, 3D 2 x 128 x 128 x 28; CNN + GRU 3 x 128 x 128 x 14;
SE-ResNeXt 3 x 256 x 256). The rows go into the benchmark record
(``stroke_lib.benchmark_records``). Each network runs in a fresh process so that the peak
memory is its own: on CPU the rise of the process's peak resident memory (ru_maxrss) over
its level before the first forward, on CUDA ``torch.cuda.max_memory_allocated``. Time is
the median and the minimum of ``--repeats`` forward+backward passes after one warm-up
pass, with the loss the sum of the logits, in training mode; on a shared machine the
minimum is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from monai.networks.nets import SEResNext50

from stroke_lib.benchmark_records import write_benchmark
from stroke_lib.models import baseline, correlation_cnn, ctnet, mamba_backends, slice_classifier, tractnet

VOLUME = (2, (48, 48, 48), (128, 128, 64))  # channels, smoke input, full input
#: name -> (factory, (channels, smoke input, full input)).
NETWORKS = {
    "tractnet-slim": (lambda: tractnet(2, slim=True), VOLUME),
    "tractnet-full": (lambda: tractnet(2), VOLUME),
    "densenet-slim": (lambda: baseline("densenet", 2, slim=True), VOLUME),
    "resnet10-slim": (lambda: baseline("resnet10", 2, slim=True), VOLUME),
    "densenet121": (lambda: baseline("densenet", 2), VOLUME),
    "resnet10": (lambda: baseline("resnet10", 2), VOLUME),
    "ctnet-slim": (lambda: ctnet(56, slim=True), (56, (40, 40), (128, 128))),
    "ctnet-full": (lambda: ctnet(56), (56, (40, 40), (128, 128))),
    "ctnet3d-slim": (lambda: ctnet(2, slim=True, spatial_dims=3), (2, (40, 40, 28), (128, 128, 28))),
    "correlation-cnn-slim": (lambda: correlation_cnn(56, slim=True), (56, (40, 40), (128, 128))),
    "cnn-gru-slim": (lambda: slice_classifier(3, 3, "gru", slim=True), (3, (32, 32, 14), (128, 128, 14))),
    "cnn-gru-full": (lambda: slice_classifier(3, 3, "gru"), (3, (32, 32, 14), (128, 128, 14))),
    "se-resnext50-2d": (lambda: SEResNext50(spatial_dims=2, in_channels=3, num_classes=1, pretrained=False),
                        (3, (128, 128), (256, 256))),
}


def measure(name: str, device: str, size: tuple[int, ...], batch: int, repeats: int) -> dict:
    """One network's parameters, median and minimum forward+backward seconds per batch and peak
    memory (MiB)."""
    torch.manual_seed(0)
    factory, (channels, _, _) = NETWORKS[name]
    model = factory().to(device).train()
    x = torch.randn(batch, channels, *size, device=device)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(x).sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before)
    return {"network": name, "device": device, "input": "x".join(map(str, size)), "batch": batch,
            "parameters": sum(p.numel() for p in model.parameters()),
            "seconds_per_batch": statistics.median(times[1:]), "min_seconds": min(times[1:]),
            "peak_mib": peak,
            "threads": torch.get_num_threads(), "mamba": ",".join(mamba_backends(model)) or "-"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--record", default=None, help="folder of the record (default benchmarks/records)")
    parser.add_argument("--one", nargs=3, metavar=("NAME", "DEVICE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child process: one network, one device, one input
        name, device, size = args.one
        print(json.dumps(measure(name, device, tuple(map(int, size.split("x"))), args.batch, args.repeats)))
        return
    runs = [(name, "cpu", NETWORKS[name][1][1]) for name in args.models]
    if torch.cuda.is_available():
        runs += [(name, "cuda", NETWORKS[name][1][1]) for name in args.models]
        runs += [(name, "cuda", NETWORKS[name][1][2]) for name in args.models if "slim" not in name]
    print(f"{'network':20} {'device':6} {'input':>10} {'batch':>5} {'parameters':>11} "
          f"{'s/batch':>8} {'min s':>7} {'peak MiB':>9} {'threads':>7}  mamba")
    rows = []
    for name, device, size in runs:
        out = subprocess.run([sys.executable, __file__, "--batch", str(args.batch), "--repeats",
                              str(args.repeats), "--one", name, device, "x".join(map(str, size))],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{r['network']:20} {r['device']:6} {r['input']:>10} {r['batch']:>5} {r['parameters']:>11,} "
              f"{r['seconds_per_batch']:>8.3f} {r['min_seconds']:>7.3f} {r['peak_mib']:>9.0f} {r['threads']:>7}  {r['mamba']}", flush=True)
    write_benchmark("models_speed", rows, "cuda" if torch.cuda.is_available() else "cpu", vars(args), args.record)


if __name__ == "__main__":
    main()
