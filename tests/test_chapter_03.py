"""Chapter 03 (CTNet) on a folder in CQ500's real layout, with its proxy label (any
intracranial haemorrhage), reached by one parameter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stroke_lib.report import run_folder
from tests.conftest import run_chapter_text

pytestmark = pytest.mark.notebook

READS = ("ICH", "SDH", "Fracture")


def write_cq500_fixture(source: Path, dest: Path, copies: int = 2) -> list[int]:
    """Each baseline CT series of an embedded cohort, ``copies`` times, in CQ500's layout
    (``CQ500CT<N> CQ500CT<N>/Unknown Study/CT 5mm/``) with a ``reads.csv`` of three readers
    (ICH on every other scan, one reader disagreeing on some); returns the majority ICH."""
    series = sorted((source / "sourcedata" / "ct").glob("*/NCCT_HEAD"))
    lines = [",".join(["name", "Category"] + [f"{r}:{f}" for r in ("R1", "R2", "R3") for f in READS])]
    majority = []
    for n in range(1, copies * len(series) + 1):
        shutil.copytree(series[(n - 1) % len(series)], dest / f"CQ500CT{n} CQ500CT{n}" / "Unknown Study" / "CT 5mm")
        ich = n % 2
        votes = [ich, ich, 1 - ich if n % 3 == 0 else ich]
        lines.append(",".join([f"CQ500-CT-{n}", "B1"] + [str(v) for r in votes for v in (r, 0, 0)]))
        majority.append(ich)
    (dest / "reads.csv").write_text("\n".join(lines) + "\n")
    return majority


def test_chapter_03_runs_on_cq500_as_a_stated_proxy_task(small_cohort, tmp_path):
    root = tmp_path / "cq500"
    majority = write_cq500_fixture(small_cohort, root)
    cut = sorted((root / "CQ500CT3 CQ500CT3" / "Unknown Study" / "CT 5mm").glob("*.dcm"))[5]
    cut.write_bytes(cut.read_bytes()[:2000])  # one slice cut short: its scan alone is left out
    params = {"profile": "smoke", "dataset": "cq500", "data_root": str(root), "epochs": 1, "folds": 2,
              "leak_seeds": 1, "n_bootstrap": 30, "ct_in_plane": 32}
    text = run_chapter_text("03_ctnet_ht", params, tmp_path / "03.ipynb")
    assert "**Proxy task**" in text and "any intracranial haemorrhage" in text
    assert "every patient of cq500 has one scan" in text and "Leak experiment skipped" in text
    assert "Reader's record and ceilings skipped" in text and "Localisation skipped" in text
    assert f"**Left out by the loader**: `{cut.name}` of patient P-" in text and "truncated" in text
    assert str(tmp_path) not in text and "CQ500CT3" not in text  # file names only, no folders
    record = json.loads((run_folder("03_ctnet_ht", params, "smoke") / "results.json").read_text())
    cv = record["metrics"]["CTNet, 2-fold CV"]
    assert 0 <= cv["auc"]["estimate"] <= 1
    assert "reader's record (logistic regression), 2-fold CV" not in record["metrics"]
    assert set(record["paired_delong_vs_ctnet"]) == {"correlation learning CNN", "plain 2D CNN (approximation)",
                                                      "CT measurements (logistic regression)"}
    assert record["ceiling"]["2-fold CV"]["oracle ceiling"] == "unknown on real data"
    assert record["leak"] == [] and "one scan" in record["leak_summary"]
    inputs = {(r["input"], r["network"]) for r in record["tissue_shares"]}
    assert inputs == {(v, n) for v in ("CTNet", "CTNet skull-stripped") for n in ("trained", "random weights")}
    pred = (run_folder("03_ctnet_ht", params, "smoke") / "predictions.csv").read_text()
    assert "CQ500" not in pred  # pseudonyms only
    assert sum(majority) == len(majority) // 2
