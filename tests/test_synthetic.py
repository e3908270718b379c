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


def test_nifti_is_ras_and_matches_ct_grid(small_cohort):
    img = nib.load(small_cohort / "sub-0001/dwi/sub-0001_rec-TRACE_dwi.nii.gz")
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    ct = read_ct_series(small_cohort / "sourcedata/ct/sub-0001/NCCT_HEAD")
    np.testing.assert_allclose(img.affine, ct.affine, atol=1e-3)
    part = pd.read_csv(small_cohort / "participants.tsv", sep="\t")
    assert {"participant_id", "age", "sex", "nihss"} <= set(part.columns)


def _ischaemic(cohort_root: Path):
    cohort = load_embedded(cohort_root, validate=False)
    rows = cohort.table[(cohort.table.modality == "DWI") & (cohort.table.stroke_type == "ischaemic")]
    for _, r in rows.iterrows():
        mask = read_nifti(r["mask"]).data == 1
        if mask.sum() >= 8:
            geo = json.loads((cohort_root / "derivatives/geometry" / f"{r.patient_id}.json").read_text())
            ct = read_ct_series(cohort.table[(cohort.table.patient_id == r.patient_id)
                                             & (cohort.table.modality == "CT")].image.iloc[0])
            yield r, mask, geo, ct


def test_lesion_contrasts_against_mirrored_side(small_cohort):
    ct_diffs = []
    n = 0
    for r, mask, geo, ct in _ischaemic(small_cohort):
        dwi, adc = read_nifti(r.image), read_nifti(r.adc)
        assert mirror_contrast(dwi.data, dwi.affine, mask, geo) > 0, r.patient_id
        assert mirror_contrast(adc.data, adc.affine, mask, geo, (1, 2000)) < 0, r.patient_id
        ct_diffs.append(mirror_contrast(ct.data, ct.affine, mask, geo, (15, 60)))
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
        mask = read_nifti(small_cohort / f"derivatives/masks/{r.participant_id}/"
                          f"{r.participant_id}_desc-lesion_mask.nii.gz").data
        if r.stroke_type == "none":
            assert not (mask == 1).any() and not (mask == 3).any()
        if r.stroke_type == "haemorrhagic":
            assert (mask == 3).any()
