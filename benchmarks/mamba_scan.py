"""Benchmark: one Mamba block's forward at sequence lengths 512, 4,096 and 32,768.

    python benchmarks/mamba_scan.py [--lengths 512 4096 32768] [--d-model 32] [--batch 1] [--repeats 3]

The same ``stroke_lib.models.mamba.Mamba`` block (same weights, same random input
(batch, L, d_model)), its selective scan computed three ways, side by side in one run:

- ``parallel scan``: the pure-PyTorch path the book runs without mamba-ssm (mambapy's
  Blelloch parallel scan over the sequence);
- ``step-by-step loop``: the same recurrence one position at a time (mambapy's
  sequential scan, ``config.pscan = False``), the plain reference;
- ``fused kernel``: mamba-ssm's CUDA kernels, on CUDA when mamba-ssm is installed.

Time is the fastest of ``--repeats`` forwards (no gradient) after one warm-up forward;
the ratio is against the step-by-step loop of the same length; the largest difference
from the loop's output shows that the three compute the same thing. Tokens per second
are batch * L / time. A network of the book scans 12^3 = 1,728 positions (TRACT-NET's
bottleneck at the smoke input) up to 32^3 = 32,768 (its full input).
"""

from __future__ import annotations

import argparse
import time

import torch

from mambapy.mamba import MambaBlock

from stroke_lib.benchmark_records import device_name, write_benchmark
from stroke_lib.models.mamba import Mamba, cuda_kernels_installed


def forward(block: Mamba, x: torch.Tensor, scan: str) -> torch.Tensor:
    """The block's output with its selective scan computed by ``scan`` (one of ``SCANS``)."""
    if scan == "fused kernel":
        return block(x)  # mamba-ssm's forward on a CUDA input when installed
    block.config.pscan = scan == "parallel scan"
    return MambaBlock.forward(block, x)


#: The ways of computing the scan; the fused kernel only on CUDA with mamba-ssm.
SCANS = ("step-by-step loop", "parallel scan", "fused kernel")


def fastest(block: Mamba, x: torch.Tensor, scan: str, repeats: int) -> tuple[float, torch.Tensor]:
    """The fastest of ``repeats`` forwards after a warm-up, in seconds, and the output."""
    with torch.no_grad():
        out = forward(block, x, scan)
        best = float("inf")
        for _ in range(repeats):
            if x.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = forward(block, x, scan)
            if x.is_cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 4096, 32768])
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", default=None, help="folder of the record (default benchmarks/records)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    scans = SCANS if device == "cuda" and cuda_kernels_installed() else SCANS[:2]
    torch.manual_seed(0)
    block = Mamba(args.d_model).to(device).eval()
    print(f"device: {device_name(device)}; d_model {args.d_model}, batch {args.batch}, fastest of {args.repeats}; "
          f"mamba-ssm {'installed' if cuda_kernels_installed() else 'not installed'}")
    print(f"{'length':>7} {'scan':<18} {'seconds':>9} {'tokens/s':>11} {'x loop':>7} {'max |diff|':>10}")
    rows = []
    for length in args.lengths:
        x = torch.randn(args.batch, length, args.d_model, generator=torch.Generator().manual_seed(length)).to(device)
        loop_s, loop_out = fastest(block, x, scans[0], args.repeats)
        for scan in scans:
            seconds, out = (loop_s, loop_out) if scan == scans[0] else fastest(block, x, scan, args.repeats)
            diff = float((out.float() - loop_out.float()).abs().max())
            rows.append({"length": length, "scan": scan, "seconds": seconds, "tokens/s": args.batch * length / seconds,
                         "x loop": loop_s / seconds, "max |diff|": diff})
            print(f"{length:>7} {scan:<18} {seconds:>9.4f} {rows[-1]['tokens/s']:>11.0f} {rows[-1]['x loop']:>7.1f} "
                  f"{diff:>10.1e}", flush=True)
    write_benchmark("mamba_scan", rows, device, vars(args), args.record)


if __name__ == "__main__":
    main()
