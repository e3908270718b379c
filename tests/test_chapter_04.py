"""Chapter 04 (CNN, CNN+RNN, transfer) on a folder in TEKNOFEST 2021's real layout: class
folders of 2D CT slices, reached by one parameter."""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from stroke_lib.paths import data_dir
from tests.conftest import run_chapter_text

pytestmark = pytest.mark.notebook

FOLDERS = {"none": "İnme Yok", "ischaemic": unicodedata.normalize("NFD", "İskemi"), "haemorrhagic": "Kanama"}


def write_teknofest_fixture(source: Path, dest: Path, per_scan: int = 6) -> pd.Series:
    """``per_scan`` middle DICOM slices of each baseline CT of an embedded cohort in the
    folder of the patient's class, and the three top slices (above any lesion) of each scan
    in the no-stroke folder, in TEKNOFEST's layout (``İnme Yok/DICOM``, ``İskemi/DICOM``,
    ``Kanama/DICOM``, the Turkish names as a zip made on macOS unpacks them); returns the
    class of each slice."""
    labels = pd.read_csv(source / "derivatives" / "labels.tsv", sep="\t").set_index("participant_id")
    classes = {}
    for series in sorted((source / "sourcedata" / "ct").glob("*/NCCT_HEAD")):
        files = sorted(series.glob("*.dcm"))
        mid = len(files) // 2
        chosen = [(f, labels.loc[series.parent.name, "stroke_type"])
                  for f in files[mid - per_scan // 2 : mid + per_scan - per_scan // 2]]
        chosen += [(f, "none") for f in files[-3:]]
        for k, (f, cls) in enumerate(chosen):
            name = f"{series.parent.name.removeprefix('sub-')}{k:02d}"
            (dest / FOLDERS[cls] / "DICOM").mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dest / FOLDERS[cls] / "DICOM" / f"{name}.dcm")
            classes[f"TF-{name}"] = cls
    return pd.Series(classes)


def test_chapter_04_runs_on_teknofest_slices(small_cohort, tmp_path):
    root = tmp_path / "teknofest_2021"
    classes = write_teknofest_fixture(small_cohort, root)
    assert set(classes) and classes.nunique() == 3
    params = {"profile": "smoke", "dataset": "teknofest_2021", "data_root": str(root), "epochs": 1, "folds": 2,
              "n_bootstrap": 30, "model_in_plane": 16, "sizes": "50,100"}
    text = run_chapter_text("04_cnn_rnn", params, tmp_path / "04.ipynb")
    assert "**MRI skipped**" in text and "**CNN+RNN and 3D CNN skipped**" in text
    assert "**Localisation skipped**" in text and "**Ceiling skipped**" in text
    record = json.loads((data_dir() / "runs" / "04_cnn_rnn-teknofest_2021-smoke-seed0" / "results.json").read_text())
    ref = record["metrics"]["CNN + bidirectional GRU, slice-supervised"]
    assert 0 <= ref["macro_auc"]["estimate"] <= 1
    assert "CNN + bidirectional GRU, end to end" not in record["metrics"]
    assert "CNN + bidirectional GRU, slice-supervised (MRI)" not in record["metrics"]
    assert {r["training patients (%)"] for r in record["transfer"]} == {50, 100}
    predictions = pd.read_csv(record["predictions"])
    assert set(predictions.patient_id) == set(classes.index)
    reference = predictions[predictions.model == "CNN + bidirectional GRU, slice-supervised"].set_index("patient_id")
    names = ["none", "ischaemic", "haemorrhagic"]
    assert (reference.label.map(dict(enumerate(names))) == classes[reference.index]).all()
