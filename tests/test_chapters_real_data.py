"""Chapters 00 and 01 on a folder in SOOP's real layout, reached by one parameter.

The fixture is written as OpenNeuro ds004889 lays SOOP out: BIDS ``sub-X/dwi`` folders
with the TRACE and ADC NIfTI files and a participants.tsv with SOOP's own columns
(``age`` "89+" included, ``n/a`` cells, no site, no stroke type, no lesion masks). The
images are copied from a small embedded cohort.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from stroke_lib.book import execute_chapter
from stroke_lib.data import load_dataset
from stroke_lib.data.synthetic import CohortSpec, generate_cohort
from stroke_lib.paths import data_dir

pytestmark = pytest.mark.notebook

SOOP_COLUMNS = ["participant_id", "sex", "age", "race", "acuteischaemicstroke", "priorstroke", "bmi",
                "nihss", "gs_rankin_6isdeath", "etiology"]


def write_soop_fixture(source: Path, dest: Path) -> pd.DataFrame:
    """Copy the DWI and ADC of every stroke subject of an embedded cohort into SOOP's
    layout at ``dest`` with a participants.tsv of SOOP's columns; returns that table."""
    labels = pd.read_csv(source / "derivatives" / "labels.tsv", sep="\t", dtype={"participant_id": str})
    labels = labels[labels.stroke_type != "none"].reset_index(drop=True)
    for pid in labels.participant_id:
        shutil.copytree(source / pid / "dwi", dest / pid / "dwi")
    part = pd.DataFrame({
        "participant_id": labels.participant_id,
        "sex": labels.sex.map({"F": "F", "M": "M"}).fillna("n/a"),
        "age": [("89+" if i == 0 else str(int(a))) for i, a in enumerate(labels.age)],
        "race": ["w" if i % 3 else "n/a" for i in range(len(labels))],
        "acuteischaemicstroke": (labels.stroke_type == "ischaemic").astype(int),
        "priorstroke": [i % 2 for i in range(len(labels))],
        "bmi": ["n/a" if i % 4 == 0 else f"{24 + i % 7}.5" for i in range(len(labels))],
        "nihss": labels.nihss.astype(int),
        "gs_rankin_6isdeath": [i % 7 for i in range(len(labels))],
        "etiology": ["cardioembolic" if i % 2 else "n/a" for i in range(len(labels))],
    })
    assert list(part.columns) == SOOP_COLUMNS
    part.to_csv(dest / "participants.tsv", sep="\t", index=False)
    return part


@pytest.fixture(scope="module")
def soop_folder(tmp_path_factory) -> Path:
    """A SOOP-layout folder at the default place, ``<data directory>/soop``."""
    cohort = generate_cohort(CohortSpec(n_subjects=40, in_plane=64, seed=5),
                             root=tmp_path_factory.mktemp("embedded") / "c", progress=False)
    dest = data_dir() / "soop"
    shutil.rmtree(dest, ignore_errors=True)
    write_soop_fixture(cohort, dest)
    return dest


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
    assert set(cohort.table.site) == {"SOOP"}


def test_chapter_00_runs_on_soop_with_one_parameter(soop_folder, tmp_path):
    text = _outputs(execute_chapter("00_cohort", {"profile": "smoke", "dataset": "soop"},
                                    output=tmp_path / "00.ipynb"))
    assert "no latent risk is known" in text and "soop has no CT" in text


def test_chapter_01_runs_on_soop_and_says_what_it_skipped(soop_folder, tmp_path):
    params = {"profile": "smoke", "dataset": "soop", "data_root": str(soop_folder), "epochs": 2,
              "folds": 2, "n_bootstrap": 50}
    text = _outputs(execute_chapter("01_evaluation", params, output=tmp_path / "01.ipynb"))
    assert "External evaluation skipped" in text and "Localisation skipped" in text
    record = json.loads((data_dir() / "runs" / "01_evaluation-soop-smoke-seed0" / "results.json").read_text())
    assert set(record["ceiling"]) == {"site SOOP cross-validation"}
    assert record["metrics"]["DenseNet, site SOOP cross-validation"]["auc"]["estimate"] >= 0
    for checks in record["saliency"].values():  # the randomisation check is kept
        assert checks["randomisation check"].split(":")[0] in {"passes", "fails", "inconclusive"}
        assert "localisation" not in checks
