"""Benchmark: time to generate a 100-subject smoke cohort (64 px slices), against workers.

    python benchmarks/cohort_generation.py [--subjects 100] [--in-plane 64] [--workers 1 N]

For each worker count in turn (default 1 and every core), the same cohort generated from
scratch: the wall time, the CPU time of all processes (on a shared machine the wall time
also counts other people's work; CPU time / cores is what free cores would take),
subjects per second, the speed-up against the first worker count, and the size on disk.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from stroke_lib.benchmark_records import write_benchmark
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
    parser.add_argument("--workers", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    parser.add_argument("--record", default=None, help="folder of the record (default benchmarks/records)")
    args = parser.parse_args()
    spec = CohortSpec(n_subjects=args.subjects, in_plane=args.in_plane, seed=12345)
    print(f"{args.subjects} subjects, {args.in_plane} px, on {os.cpu_count()} cores")
    rows = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            start, cpu0 = time.perf_counter(), _cpu_seconds()
            root = generate_cohort(spec, root=Path(tmp) / "bench", workers=workers, progress=False)
            seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
            size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        rows.append({"workers": workers, "wall s": seconds, "CPU s": cpu, "subjects/s": args.subjects / seconds,
                     "x first": rows[0]["wall s"] / seconds if rows else 1.0, "MiB": size / 2**20})
        print(f"  {workers} workers: {seconds:.1f} s wall, {cpu:.1f} s CPU ({rows[-1]['subjects/s']:.2f} subjects/s, "
              f"{rows[-1]['x first']:.2f}x {args.workers[0]} worker(s)), {size / 2**20:.0f} MiB", flush=True)
    write_benchmark("cohort_generation", rows, "cpu", vars(args), args.record)


if __name__ == "__main__":
    main()
