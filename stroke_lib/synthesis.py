"""What reproduced: each paper's claims set against the run records of its chapter.

A run record is the ``results.json`` a chapter writes (``stroke_lib.report.write_record``)
under ``<runs>/<chapter>-<dataset>-<profile>-seed<seed>/``. Every number the synthesis
chapter shows is read here from those records, or from ``book/published_numbers.yaml``
for the papers' own values; none is typed in.

A claim's verdict is one of ``VERDICTS``:

- **supported**: the interval of our estimate lies on the claim's side (a difference
  above 0, an AUC above 0.5);
- **not supported**: it does not (the interval includes no difference, or lies on the
  other side), with the reason;
- **not testable here**: the claim is a number on the paper's private data, a number no
  run stands behind, or a part the chapter's record does not hold for this dataset.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stroke_lib.page import format_interval
from stroke_lib.paths import run_name

VERDICTS = ("supported", "not supported", "not testable here")


def record_path(runs: Path, chapter: str, dataset: str, profile: str, seed: int) -> Path:
    """``<runs>/<chapter>-<dataset>-<profile>-seed<seed>/results.json``
    (``stroke_lib.paths.run_name``): the book's run of ``chapter`` on ``dataset``, or an
    experiment's when ``dataset`` is ``<dataset>-<digest>``, its folder's."""
    return Path(runs) / run_name(chapter, dataset, profile, seed) / "results.json"


def load_records(runs: Path, datasets: Mapping[str, str], profile: str, seed: int) -> dict[str, dict]:
    """The run record of each chapter in ``datasets`` (chapter -> dataset name) for
    ``profile`` and ``seed``; a chapter without one is left out."""
    out = {}
    for chapter, dataset in datasets.items():
        path = record_path(runs, chapter, dataset, profile, seed)
        if path.exists():
            out[chapter] = json.loads(path.read_text()) | {"_path": str(path)}
    return out


def run_costs(runs: Path) -> pd.DataFrame:
    """Every run record under ``runs``: chapter, dataset, profile, device, seed, which run
    it is (``"book"``, or ``"experiment <8 hex digits>"`` for a run with other parameters,
    ``stroke_lib.report.run_folder``) and the chapter's wall time (``seconds``, from its
    start to its record; "-" in a record that predates it). Sorted by chapter, profile,
    dataset and run (the book's first)."""
    rows = []
    for path in sorted(Path(runs).glob("*/results.json")):
        record = json.loads(path.read_text())
        chapter, dataset = path.parent.name.split("-")[0], record.get("parameters", {}).get("dataset", "-")
        book = run_name(chapter, dataset, record.get("profile"), record.get("seed"))
        digest = path.parent.name.removeprefix(f"{chapter}-{dataset}-").split("-")[0]
        rows.append({"chapter": chapter, "dataset": dataset,
                     "profile": record.get("profile"), "device": record.get("device"), "seed": record.get("seed"),
                     "run": "book" if path.parent.name == book else f"experiment {digest}",
                     "seconds": record.get("seconds", "-")})
    columns = ["chapter", "dataset", "profile", "device", "seed", "run", "seconds"]
    return pd.DataFrame(rows, columns=columns).sort_values(["chapter", "profile", "dataset", "run"],
                                                           ignore_index=True)


@dataclass(frozen=True)
class Estimate:
    """A number of ours with its 95% interval (``lower``/``upper`` NaN when it has none)."""

    value: float
    lower: float = math.nan
    upper: float = math.nan

    def text(self) -> str:
        """The estimate as the book prints it: ``0.78 [0.69, 0.87]``, or signed for a
        difference when ``value`` may be negative."""
        return format_interval(self.value, self.lower, self.upper)


def _number(value: object) -> float:
    """A record's number as a float; JSON's null (an interval without spread) as NaN."""
    return math.nan if value is None else float(value)


def metric(record: dict, table: str, name: str = "auc") -> Estimate:
    """Metric ``name`` of the metrics table ``table`` of a run record."""
    row = record["metrics"][table][name]
    return Estimate(*(_number(row[k]) for k in ("estimate", "lower", "upper")))


def difference(test: dict) -> Estimate:
    """The difference of a paired comparison in a record, with its 95% interval: the
    percentile interval of ``paired_bootstrap`` (``lower``/``upper``), or
    ``difference +- 1.96 se`` of ``delong_test``."""
    d = float(test["difference"])
    if "lower" in test:
        return Estimate(d, float(test["lower"]), float(test["upper"]))
    se = float(test.get("se", math.nan))
    return Estimate(d, d - 1.96 * se, d + 1.96 * se)


def signed(e: Estimate) -> str:
    """A difference as the book prints it, with its sign: ``+0.05 [-0.02, 0.12]``."""
    text = e.text()
    return text if text.startswith("-") or not math.isfinite(e.value) else f"+{text}"


def above(e: Estimate, threshold: float, what: str) -> tuple[str, str]:
    """Verdict and reason for a claim that ``e`` exceeds ``threshold``."""
    if not (math.isfinite(e.lower) and math.isfinite(e.upper)):
        return "not supported", f"{what} has no interval in this run"
    if e.lower > threshold:
        return "supported", f"the interval of {what} lies above {threshold:g}"
    if e.upper < threshold:
        return "not supported", f"the opposite: the interval of {what} lies below {threshold:g}"
    return "not supported", f"the interval of {what} includes {threshold:g}: not shown"


def negated(e: Estimate) -> Estimate:
    """``-e``: the difference b - a from a record's a - b."""
    return Estimate(-e.value, -e.upper, -e.lower)


def best_of(estimates: Mapping[str, Estimate], claimed: str) -> tuple[str, str]:
    """Verdict and reason for a claim that option ``claimed`` is the best of ``estimates``
    (option -> estimate, higher is better): supported only when it has the highest
    estimate and its interval lies above every other option's."""
    if claimed not in estimates:
        return "not testable here", f"{claimed} was not run"
    top = max(estimates, key=lambda k: estimates[k].value)
    others = [e for k, e in estimates.items() if k != claimed]
    if top != claimed:
        separated = estimates[top].lower > estimates[claimed].upper
        return "not supported", (f"{top} is highest by its estimate ({estimates[top].text()}); "
                                 + ("its interval lies above the claimed one's: the opposite" if separated
                                    else "the intervals overlap: not shown either way"))
    if all(estimates[claimed].lower > e.upper for e in others):
        return "supported", "highest here, its interval above every other option's"
    return "not supported", "highest here by its estimate, but the intervals overlap: not shown"


def ceilings_table(records: Mapping[str, dict]) -> pd.DataFrame:
    """The ceilings each chapter's record holds, one row each: chapter, task or
    evaluation, which ceiling, and its AUC with interval as the chapter printed it.

    Read from a record's ``ceiling`` (evaluation -> {name: text} with names ending in
    "ceiling", less the "<model>: share of the way ..." ones, or task -> {estimate,
    lower, upper} of the true lesion share) and from its
    metrics tables named "... ceiling ..." (their ``macro_auc``, or ``auc``)."""
    rows = []
    for chapter, record in records.items():
        for task, values in (record.get("ceiling") or {}).items():
            if {"estimate", "lower", "upper"} <= set(values):
                rows.append((chapter, task, "oracle ceiling (true lesion share)",
                             format_interval(values["estimate"], values["lower"], values["upper"])))
                continue
            rows += [(chapter, task, name, str(text)) for name, text in values.items()
                     if name.endswith("ceiling") and ":" not in name]
        for name, table in record.get("metrics", {}).items():
            if "ceiling" in name:
                m = table.get("macro_auc", table.get("auc"))
                rows.append((chapter, "every patient", name,
                             format_interval(*(_number(m[k]) for k in ("estimate", "lower", "upper")))))
    return pd.DataFrame(rows, columns=["chapter", "task", "ceiling", "AUC [95% CI]"])
