"""Chapter 02 (TRACT-NET) on a folder in SOOP's real layout (the ``soop_folder`` fixture
of conftest.py): one site, no masks, reached by one parameter."""

from __future__ import annotations

import json

import pytest

from stroke_lib.report import run_folder
from tests.conftest import run_chapter_text

pytestmark = pytest.mark.notebook


def test_chapter_02_runs_on_soop_and_says_what_it_skipped(soop_folder, tmp_path):
    params = {"profile": "smoke", "dataset": "soop", "epochs": 1, "baseline_epochs": 1, "folds": 2,
              "n_bootstrap": 30}
    text = run_chapter_text("02_tractnet", params, tmp_path / "02.ipynb")
    assert "External evaluation skipped" in text and "Localisation skipped" in text
    assert "Oracle ceiling unknown" in text and "true lesion volume is not known" in text
    # chapter 01 has not run on this folder: the baselines are trained here, and the page says so
    assert "trained in this chapter" in text
    record = json.loads((run_folder("02_tractnet", params, "smoke") / "results.json").read_text())
    assert set(record["ceiling"]) == {"site SOOP cross-validation"}
    assert record["parameter_counts"]["TRACT-NET"] > 0 and record["mamba_backend"] in {"mambapy", "mamba-ssm"}
    assert {"DenseNet", "ResNet10", "TRACT-NET, cross-validation"} <= set(record["timings_s"])
    assert set(record["paired_delong_vs_tractnet"]) == {
        f"{m}, site SOOP cross-validation" for m in
        ["DenseNet", "ResNet10", "lesion volume (logistic regression)",
         "lesion volume, side and location (logistic regression)"]}
    assert len(record["ablations"]) == 4  # the full model and the smoke profile's three variants
    for checks in record["saliency"].values():  # the randomisation check is kept
        assert checks["randomisation check"].split(":")[0] in {"passes", "fails", "inconclusive"}
        assert "localisation" not in checks
