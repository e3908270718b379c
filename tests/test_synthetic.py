"""The embedded cohort: determinism, file formats, and the contrasts it promises."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from stroke_lib.data import load_embedded, read_ct_series, read_nifti
from stroke_lib.data.synthetic import CohortSpec, generate_cohort, mirror_contrast
from tests.conftest import SMALL


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(small_cohort, tmp_path):
    again = generate_cohort(SMALL, root=tmp_path / "again", workers=1, progress=False)
    assert _digest(small_cohort) == _digest(again)


def test_other_seed_gives_other_images(small_cohort, tmp_path):
    spec = CohortSpec(n_subjects=2, in_plane=64, seed=4)
    other = generate_cohort(spec, root=tmp_path / "other", progress=False)
    a = small_cohort / "sub-0001/dwi/sub-0001_rec-TRACE_dwi.nii.gz"
    b = other / "sub-0001/dwi/sub-0001_rec-TRACE_dwi.nii.gz"
    assert a.read_bytes() != b.read_bytes()


def test_cached_cohort_is_not_regenerated(small_cohort):
    stamp = (small_cohort / "participants.tsv").stat().st_mtime_ns
    assert generate_cohort(SMALL, root=small_cohort, progress=False) == small_cohort
    assert (small_cohort / "participants.tsv").stat().st_mtime_ns == stamp


def test_plain_pydicom_gives_the_loader_hu(small_cohort):
    series = small_cohort / "sourcedata/ct/sub-0002/NCCT_HEAD"
    vol = read_ct_series(series)
    files = sorted(series.glob("*.dcm"))
    datasets = sorted((pydicom.dcmread(f) for f in files),
                      key=lambda d: float(d.ImagePositionPatient[2]))
    ds = datasets[5]
    assert ds.Modality == "CT" and ds.SOPClassUID == pydicom.uid.CTImageStorage
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    # loader axis 0 runs to the Right: DICOM columns run to the patient's Left.
    np.testing.assert_allclose(vol.data[::-1, ::-1, 5].T, hu)
    assert vol.orientation == "RAS"
    assert vol.spacing[2] == pytest.approx(5.0)
    assert -1024 <= hu.min() and hu.max() > 1000  # air and skull present


def _template_centroid(mask: np.ndarray, affine: np.ndarray, pose: list) -> np.ndarray:
    """Centre (template mm) of a mask's voxels, through the acquisition's pose."""
    world = affine[:3, :3] @ np.argwhere(mask).mean(0) + affine[:3, 3]
    return (np.linalg.inv(np.asarray(pose)) @ np.append(world, 1.0))[:3]


def test_ct_and_dwi_are_two_acquisitions_of_one_patient(small_cohort):
    """RAS NIfTI on a grid of its own; the lesion at one template place in both."""
    img = nib.load(small_cohort / "sub-0001/dwi/sub-0001_rec-TRACE_dwi.nii.gz")
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    part = pd.read_csv(small_cohort / "participants.tsv", sep="\t")
    assert {"participant_id", "age", "sex", "nihss"} <= set(part.columns)
    cohort = load_embedded(small_cohort, validate=False).table
    checked = 0
    for pid, rows in cohort[cohort.followup == 0].groupby("patient_id"):
        ct, dwi = (rows[rows.modality == m].iloc[0] for m in ("CT", "DWI"))
        ct_vol, trace = read_ct_series(ct.image), read_nifti(dwi.image)
        ct_mask, dwi_mask = read_nifti(ct["mask"]), read_nifti(dwi["mask"])
        np.testing.assert_allclose(ct_mask.affine, ct_vol.affine, atol=1e-3)
        np.testing.assert_allclose(dwi_mask.affine, trace.affine, atol=1e-3)
        assert ct_mask.data.shape == ct_vol.data.shape and dwi_mask.data.shape == trace.data.shape
        assert not np.allclose(ct_vol.affine, trace.affine, atol=0.5), pid  # other grid
        geo = json.loads((small_cohort / "derivatives/geometry" / f"{pid}.json").read_text())
        moved = np.asarray(geo["dwi_from_template"]) - np.asarray(geo["subject_from_template"])
        assert np.abs(moved).max() > 0.01, pid  # the head lies differently
        ct_lesion, dwi_lesion = (np.isin(np.rint(m.data), (1, 3)) for m in (ct_mask, dwi_mask))
        assert ct_lesion.any() == dwi_lesion.any(), pid
        if ct_lesion.sum() >= 8:
            a = _template_centroid(ct_lesion, ct_mask.affine, geo["subject_from_template"])
            b = _template_centroid(dwi_lesion, dwi_mask.affine, geo["dwi_from_template"])
            # the same template place, up to the EPI shift and the 5 mm slices
            assert np.linalg.norm(a - b) < 6.0, (pid, a, b)
            checked += 1
    assert checked >= 2


def test_adc_is_computed_from_b0_and_trace(small_cohort):
    """ADC = ln(b0 / trace) / b inside the brain, as a scanner computes it."""
    dwi = small_cohort / "sub-0001/dwi"
    trace, adc, b0 = (nib.load(dwi / f"sub-0001_rec-{r}_dwi.nii.gz").get_fdata() for r in ("TRACE", "ADC", "B0"))
    brain = (adc > 0) & (adc < 4000)
    assert brain.sum() > 1000
    np.testing.assert_allclose(adc[brain], np.log(b0[brain] / trace[brain]) / 1000 * 1e6, rtol=1e-3, atol=1.0)
    sidecar = json.loads((dwi / "sub-0001_rec-B0_dwi.json").read_text())
    assert sidecar["DiffusionBValue"] == 0 and sidecar["PhaseEncodingDirection"] == "j"


def _ischaemic(cohort_root: Path):
    """(DWI row, its acute mask, geometry, the CT row, its acute mask, the CT volume)."""
    cohort = load_embedded(cohort_root, validate=False)
    table = cohort.table[cohort.table.followup == 0]
    rows = table[(table.modality == "DWI") & (table.stroke_type == "ischaemic")]
    for _, r in rows.iterrows():
        mask = read_nifti(r["mask"]).data == 1
        if mask.sum() >= 8:
            geo = json.loads((cohort_root / "derivatives/geometry" / f"{r.patient_id}.json").read_text())
            ct_row = table[(table.patient_id == r.patient_id) & (table.modality == "CT")].iloc[0]
            yield r, mask, geo, read_nifti(ct_row["mask"]).data == 1, read_ct_series(ct_row.image)


def test_lesion_contrasts_against_mirrored_side(small_cohort):
    ct_diffs = []
    n = 0
    for r, mask, geo, ct_mask, ct in _ischaemic(small_cohort):
        dwi, adc = read_nifti(r.image), read_nifti(r.adc)
        assert mirror_contrast(dwi.data, dwi.affine, mask, geo, modality="DWI") > 0, r.patient_id
        assert mirror_contrast(adc.data, adc.affine, mask, geo, (1, 2000), modality="DWI") < 0, r.patient_id
        ct_diffs.append(mirror_contrast(ct.data, ct.affine, ct_mask, geo, (15, 60)))
        n += 1
    assert n >= 3
    # water uptake (``early_ct_delta_hu``, 2-6 HU) plus the grey matter's lost excess over
    # white matter (``gw_loss``): a few HU more than the uniform offset alone
    assert -10.0 <= float(np.median(ct_diffs)) <= -2.0


def test_labels_and_oracle(small_cohort):
    labels = pd.read_csv(small_cohort / "derivatives/labels.tsv", sep="\t")
    assert set(labels.site) <= {"A", "B"}
    assert set(labels.stroke_type) <= {"none", "ischaemic", "haemorrhagic"}
    assert ((labels.nihss <= 3) == (labels.severity == "minor")).all()
    assert labels.loc[labels.stroke_type != "ischaemic", "ht"].isna().all()
    oracle = json.loads((small_cohort / "derivatives/oracle.json").read_text())
    assert {"non_minor", "ht", "region_early"} <= set(oracle)
    assert 0.5 < oracle["non_minor"]["all"] <= 1.0


def test_lesion_mask_matches_record(small_cohort):
    labels = pd.read_csv(small_cohort / "derivatives/labels.tsv", sep="\t")
    for _, r in labels.iterrows():
        for grid in ("", "_space-dwi"):
            mask = read_nifti(small_cohort / f"derivatives/masks/{r.participant_id}/"
                              f"{r.participant_id}{grid}_desc-lesion_mask.nii.gz").data
            if r.stroke_type == "none":
                assert not (mask == 1).any() and not (mask == 3).any()
            if r.stroke_type == "haemorrhagic":
                assert (mask == 3).any()
            if r.stroke_type == "ischaemic":
                assert (mask == 1).any()
