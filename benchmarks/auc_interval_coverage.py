"""Benchmark: do the book's AUC intervals cover the true AUC with several scans per patient?

    python benchmarks/auc_interval_coverage.py [--datasets 200] [--patients 60] [--scans 3]
        [--icc 0.6] [--auc 0.8] [--boot 1000] [--seed 0]

Each simulated dataset has ``patients`` patients (half positive), ``scans`` scans each, all
with the patient's label. A scan's score is ``d * label + u_patient + e_scan`` with
``u ~ N(0, icc)`` and ``e ~ N(0, 1 - icc)``, so scans of one patient are correlated (their
correlation is ``icc``) and the true AUC, P(score of a positive scan > score of a negative
scan), is ``Phi(d / sqrt(2))`` = ``--auc``.

For every dataset it computes the two AUC intervals that ``metrics_table`` reports (the
stratified patient bootstrap, row ``auc``, and DeLong with Obuchowski's clustered variance,
row ``auc_delong``), plus DeLong treating every scan as independent, the interval the
book reported before. It prints, per method, the share of datasets whose 95% interval
contains the true AUC (with a Wilson interval for that share) and the mean width.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import stats

from stroke_lib.metrics import auc, bootstrap_ci, delong_ci, metrics_table, wilson_ci


def simulate(rng: np.random.Generator, patients: int, scans: int, icc: float, true_auc: float):
    """One dataset: labels (patients * scans,), scores, patient IDs."""
    d = np.sqrt(2) * stats.norm.ppf(true_auc)
    label = np.repeat(np.arange(patients) % 2, scans)
    groups = np.repeat(np.arange(patients), scans)
    score = (d * label + rng.normal(0, np.sqrt(icc), patients)[groups]
             + rng.normal(0, np.sqrt(1 - icc), patients * scans))
    return label, score, groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--scans", type=int, default=3)
    parser.add_argument("--icc", type=float, default=0.6)
    parser.add_argument("--auc", type=float, default=0.8)
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap replicates per dataset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()

    # the intervals computed below are the ones metrics_table reports: checked on one dataset
    y, score, groups = simulate(rng, args.patients, args.scans, args.icc, args.auc)
    table = metrics_table(y, score, groups, n_boot=args.boot, seed=0)
    assert np.allclose(table.loc["auc", ["estimate", "lower", "upper"]].astype(float),
                       bootstrap_ci(y, score, groups, auc, n_boot=args.boot, seed=0), rtol=0, atol=1e-12)
    assert np.allclose(table.loc["auc_delong", ["estimate", "lower", "upper"]].astype(float),
                       delong_ci(y, score, groups), rtol=0, atol=1e-12)

    methods = {
        "DeLong, scans as independent (before)": lambda y, s, g, i: delong_ci(y, s),
        "DeLong, clustered (Obuchowski; table row auc_delong)": lambda y, s, g, i: delong_ci(y, s, g),
        f"patient bootstrap, {args.boot} replicates (table row auc)":
            lambda y, s, g, i: bootstrap_ci(y, s, g, auc, n_boot=args.boot, seed=i),
    }
    hits = {m: 0 for m in methods}
    widths: dict[str, list[float]] = {m: [] for m in methods}
    for i in range(args.datasets):
        y, score, groups = simulate(rng, args.patients, args.scans, args.icc, args.auc)
        for name, interval in methods.items():
            _, lo, hi = interval(y, score, groups, i)
            hits[name] += lo <= args.auc <= hi
            widths[name].append(hi - lo)

    rows = {}
    for name in methods:
        lo, hi = wilson_ci(hits[name], args.datasets)
        rows[name] = {"coverage": hits[name] / args.datasets, "coverage 95% CI": f"[{lo:.3f}, {hi:.3f}]",
                      "mean width": float(np.mean(widths[name]))}
    result = pd.DataFrame(rows).T
    boot = result["mean width"].iloc[-1]
    result["width / bootstrap"] = result["mean width"].astype(float) / boot
    print(f"{args.datasets} datasets: {args.patients} patients x {args.scans} scans, within-patient correlation "
          f"{args.icc}, true AUC {args.auc}, seed {args.seed}; nominal coverage 0.95")
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(result.to_string())
    print(f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
