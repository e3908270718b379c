"""Benchmark: time to generate a 100-subject smoke cohort (64 px slices).

    python benchmarks/cohort_generation.py [--subjects 100] [--in-plane 64] [--workers N]

Prints the wall time, the CPU time of all processes (on a shared machine the wall time
also counts other people's work; CPU time / cores is what free cores would take),
subjects per second and the size on disk.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from stroke_lib.data.synthetic import CohortSpec, generate_cohort


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=100)
    parser.add_argument("--in-plane", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    spec = CohortSpec(n_subjects=args.subjects, in_plane=args.in_plane, seed=12345)
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu0 = time.perf_counter(), _cpu_seconds()
        root = generate_cohort(spec, root=Path(tmp) / "bench", workers=args.workers, progress=False)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    print(f"{args.subjects} subjects, {args.in_plane} px, {args.workers} workers on "
          f"{os.cpu_count()} cores: {seconds:.1f} s wall, {cpu:.1f} s CPU "
          f"({args.subjects / seconds:.2f} subjects/s), "
          f"{size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
