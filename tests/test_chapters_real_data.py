"""Chapters 00 and 01 on a folder in SOOP's real layout (the ``soop_folder`` fixture of
conftest.py), reached by one parameter."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from stroke_lib.book import execute_chapter
from stroke_lib.data import load_dataset
from stroke_lib.report import run_folder

pytestmark = pytest.mark.notebook

def _outputs(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors[0].get("evalue") if errors else ""
    return "\n".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("text", ""))
                     for c in nb.cells for o in c.get("outputs", []))


def test_loader_reads_the_fixture_with_soop_columns(soop_folder):
    cohort = load_dataset("soop")
    assert cohort.table.nihss.dtype.kind in "if" and cohort.table.age.dtype.kind in "if"
    assert cohort.table.age.max() == 89
    assert (cohort.rejects.action == "repaired").any() and cohort.rejects.problem.str.contains("89").any()
    assert set(cohort.table.site) == {"SOOP"}


def test_chapter_00_runs_on_soop_with_one_parameter(soop_folder, tmp_path):
    params = {"profile": "smoke", "dataset": "soop"}
    text = _outputs(execute_chapter("00_cohort", params, output=tmp_path / "00.ipynb"))
    assert "no latent risk is known" in text and "soop has no CT" in text


def test_chapter_01_runs_on_soop_and_says_what_it_skipped(soop_folder, tmp_path):
    params = {"profile": "smoke", "dataset": "soop", "data_root": str(soop_folder), "epochs": 2,
              "folds": 2, "n_bootstrap": 50}
    text = _outputs(execute_chapter("01_evaluation", params, output=tmp_path / "01.ipynb"))
    assert "External evaluation skipped" in text and "Localisation skipped" in text
    record = json.loads((run_folder("01_evaluation", params, "smoke") / "results.json").read_text())
    assert set(record["ceiling"]) == {"site SOOP cross-validation"}
    assert record["metrics"]["DenseNet, site SOOP cross-validation"]["auc"]["estimate"] >= 0
    for checks in record["saliency"].values():  # the randomisation check is kept
        assert checks["randomisation check"].split(":")[0] in {"passes", "fails", "inconclusive"}
        assert "localisation" not in checks
