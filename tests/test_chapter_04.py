"""Chapter 04 (CNN, CNN+RNN, transfer) on folders in two real datasets' layouts, each
reached by one parameter: TEKNOFEST 2021 (class folders of 2D CT slices) and RSNA ICH 2019
(a flat folder of slices with a label table, grouped into scans by their headers)."""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stroke_lib.report import run_folder
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
    record = json.loads((run_folder("04_cnn_rnn", params, "smoke") / "results.json").read_text())
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


def write_rsna_fixture(source: Path, dest: Path, copies: int = 2) -> pd.DataFrame:
    """Every CT scan of an embedded cohort (baseline and follow-up) in RSNA ICH 2019's flat
    layout: ``stage_2_train/ID_<hex>.dcm`` and ``stage_2_train.csv`` with a row per slice
    and subtype, a slice labelled intraparenchymal (and ``any``) where the cohort's mask
    has haemorrhage on it. Each subject is written ``copies`` times as other patients (own
    PatientID, study and series UIDs), for enough patients to split. One slice of one
    scan is cut short inside its pixel data. Returns one row per scan: patient, series
    folder, scan label and the cut file."""
    import nibabel as nib
    import pydicom
    from pydicom.uid import generate_uid

    from stroke_lib.data.rsna import SUBTYPES

    (dest / "stage_2_train").mkdir(parents=True)
    lines, scans, n, cut_done = ["ID,Label"], [], 0, False
    for copy, series in ((c, s) for c in range(copies) for s in sorted((source / "sourcedata" / "ct").glob("*/NCCT_HEAD*"))):
        subject, session = series.parent.name, series.name.removeprefix("NCCT_HEAD").lstrip("_").lower()
        mask_name = f"{subject}_ses-{session}_desc-lesion_mask.nii.gz" if session else f"{subject}_desc-lesion_mask.nii.gz"
        bleed = (np.asanyarray(nib.load(source / "derivatives" / "masks" / subject / mask_name).dataobj) == 3).any((0, 1))
        files = sorted(series.glob("*.dcm"), key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True)
                                                                 .ImagePositionPatient[2]))
        cut = None
        for k, f in enumerate(files):
            sid, n = f"ID_{n:09x}", n + 1
            ds = pydicom.dcmread(f)
            ds.PatientID = f"{ds.PatientID}-{copy}"
            ds.StudyInstanceUID, ds.SeriesInstanceUID = (generate_uid(entropy_srcs=[uid, str(copy)])
                                                         for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID))
            ds.save_as(dest / "stage_2_train" / f"{sid}.dcm")
            label = int(bleed[k])
            lines += [f"{sid}_{sub},{label if sub in ('any', 'intraparenchymal') else 0}" for sub in SUBTYPES]
            if session and not cut_done and k == len(files) // 2:
                path = dest / "stage_2_train" / f"{sid}.dcm"
                path.write_bytes(path.read_bytes()[:-200])
                cut, cut_done = path.name, True
        scans.append({"subject": f"{subject}-{copy}", "series": series.name, "haemorrhage": int(bleed.any()), "cut": cut})
    (dest / "stage_2_train.csv").write_text("\n".join(lines) + "\n")
    return pd.DataFrame(scans)


def test_chapter_04_runs_on_rsna_scans(small_cohort, tmp_path):
    root = tmp_path / "rsna_ich_2019"
    scans = write_rsna_fixture(small_cohort, root)
    cut = scans.cut.dropna().tolist()
    assert len(cut) == 1 and 0 < scans.haemorrhage.sum() < len(scans)
    params = {"profile": "smoke", "dataset": "rsna_ich_2019", "data_root": str(root), "epochs": 1, "folds": 2,
              "n_bootstrap": 30, "model_in_plane": 16, "sizes": "100"}
    text = run_chapter_text("04_cnn_rnn", params, tmp_path / "04.ipynb")
    assert "**MRI skipped**" in text and "**Ischaemic stroke skipped**" in text
    assert "**Localisation skipped**" in text and "**Ceiling skipped**" in text
    assert "**Left out**" in text and cut[0] in text  # the cut slice sinks its scan alone, named
    record = json.loads((run_folder("04_cnn_rnn", params, "smoke") / "results.json").read_text())
    metrics = record["metrics"]
    assert "CNN + bidirectional GRU, end to end" in metrics and "3D CNN (ResNet10, chapter 01)" in metrics
    assert "haemorrhagic stroke model (binary)" in metrics and "ischaemic stroke model (binary)" not in metrics
    ref = metrics["CNN + bidirectional GRU, slice-supervised"]
    assert ref["macro_auc"]["estimate"] == pytest.approx(ref["auc haemorrhagic"]["estimate"])
    predictions = pd.read_csv(record["predictions"])
    reference = predictions[predictions.model == "CNN + bidirectional GRU, slice-supervised"]
    assert len(reference) == len(scans) - 1 and reference.patient_id.nunique() == scans.subject.nunique()
    assert set(reference.columns) >= {"score none", "score haemorrhagic"}
    np.testing.assert_allclose(reference[["score none", "score haemorrhagic"]].sum(axis=1), 1, atol=1e-5)
    expected = scans[scans.cut.isna()].haemorrhage.sort_values().to_numpy()
    assert (np.sort(reference.label.to_numpy()) == expected).all()
