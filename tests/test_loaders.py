"""Loaders on bad input: each problem named with its file, the rest of the cohort kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from stroke_lib.data import faults, load_embedded, load_isles22, load_soop, read_ct_series, read_nifti
from stroke_lib.data.cohort import load_ct_series_folders
from stroke_lib.errors import DataError


@pytest.fixture
def copy(small_cohort, tmp_path) -> Path:
    """A writable copy of the first four subjects of the small cohort."""
    root = tmp_path / "copy"
    assert faults.copy_subjects(small_cohort, root, 4) == [f"sub-{i:04d}" for i in range(1, 5)]
    return root


def _series(root: Path, pid: str = "sub-0001") -> Path:
    return root / "sourcedata/ct" / pid / "NCCT_HEAD"


def test_truncated_dicom(copy):
    victim = sorted(_series(copy).glob("*.dcm"))[2]
    faults.truncate_file(victim)
    with pytest.raises(DataError) as err:
        read_ct_series(_series(copy))
    assert err.value.path == victim
    cohort = load_ct_series_folders(copy / "sourcedata/ct", "*/NCCT_HEAD")
    assert len(cohort.table) == 3
    assert cohort.rejects.file.tolist() == [str(victim)]


def test_missing_slice(copy):
    faults.drop_slice(_series(copy))
    with pytest.raises(DataError, match="gap"):
        read_ct_series(_series(copy))


def test_duplicate_slice_position(copy):
    changed = faults.duplicate_slice_position(_series(copy))
    with pytest.raises(DataError, match="duplicate slice position") as err:
        read_ct_series(_series(copy))
    assert err.value.path.parent == changed.parent


def test_two_series_in_one_folder(copy):
    shutil.copytree(_series(copy, "sub-0002"), _series(copy), dirs_exist_ok=True)
    # Same file names would overwrite; give the second series its own names.
    for p in _series(copy, "sub-0003").glob("*.dcm"):
        shutil.copy(p, _series(copy) / f"other_{p.name}")
    with pytest.raises(DataError, match="series in one folder") as err:
        read_ct_series(_series(copy))
    assert err.value.path == _series(copy)


def test_ct_without_rescale_intercept(copy):
    faults.remove_tag(_series(copy), "RescaleIntercept")
    with pytest.raises(DataError, match="RescaleIntercept is missing") as err:
        read_ct_series(_series(copy))
    assert err.value.path.suffix == ".dcm"


def test_non_ct_modality(copy):
    for p in _series(copy).glob("*.dcm"):
        ds = pydicom.dcmread(p)
        ds.Modality = "MR"
        ds.save_as(p)
    with pytest.raises(DataError, match="modality is MR"):
        read_ct_series(_series(copy))


def test_compressed_without_decoder_is_named(copy):
    path = sorted(_series(copy).glob("*.dcm"))[0]
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DataError, match="JPEG 2000") as err:
        read_ct_series(_series(copy))
    assert err.value.path == path


def test_slices_sorted_by_position_not_instance_number(copy):
    files = sorted(_series(copy).glob("*.dcm"))
    before = read_ct_series(_series(copy)).data
    for i, p in enumerate(files):  # scramble instance numbers
        ds = pydicom.dcmread(p)
        ds.InstanceNumber = (i * 7) % len(files) + 1
        ds.save_as(p)
    np.testing.assert_array_equal(read_ct_series(_series(copy)).data, before)


def test_nifti_non_ras_is_reoriented_and_reported(copy):
    path = copy / "sub-0001/dwi/sub-0001_rec-TRACE_dwi.nii.gz"
    before = read_nifti(path)
    faults.reorient_to_lps(path)
    after = read_nifti(path)
    assert after.orientation == "RAS"
    np.testing.assert_array_equal(after.data, before.data)
    assert after.notes == ["reoriented from LPS to RAS"]
    cohort = load_soop(copy)
    repaired = cohort.rejects[cohort.rejects.action == "repaired"]
    assert repaired.file.tolist() == [str(path)] and len(cohort.table) == 4


def test_nifti_with_nans(copy):
    path = copy / "sub-0002/dwi/sub-0002_rec-ADC_dwi.nii.gz"
    faults.add_nans(path, 0.02)
    vol = read_nifti(path)
    assert np.isfinite(vol.data).all() and "NaN/inf voxels set to 0" in vol.notes[0]
    cohort = load_soop(copy)
    assert len(cohort.table) == 4
    row = cohort.rejects.iloc[0]
    assert row.file == str(path) and "NaN" in row.problem and row.action == "repaired"


def test_unreadable_nifti_is_skipped_rest_loads(copy):
    path = copy / "sub-0003/dwi/sub-0003_rec-TRACE_dwi.nii.gz"
    faults.truncate_file(path, 0.3)
    cohort = load_soop(copy)
    assert sorted(cohort.table.patient_id) == ["sub-0001", "sub-0002", "sub-0004"]
    assert cohort.rejects.file.tolist() == [str(path)]
    assert cohort.rejects.action.tolist() == ["skipped"]


def test_participants_without_nihss(copy):
    faults.drop_column(copy / "participants.tsv", "nihss")
    with pytest.raises(DataError, match=r"missing column\(s\) \['nihss'\]") as err:
        load_soop(copy)
    assert err.value.path == copy / "participants.tsv"


def test_patient_name_never_enters_cohort(copy, small_cohort):
    faults.set_patient_name(_series(copy), faults.EXAMPLE_PATIENT_NAME)
    cohort = load_ct_series_folders(copy / "sourcedata/ct", "*/NCCT_HEAD")
    assert len(cohort.table) == 4
    text = cohort.table.to_csv() + cohort.rejects.to_csv()
    for part in faults.EXAMPLE_PATIENT_NAME.split("^"):
        assert part not in text
    assert faults.EXAMPLE_PATIENT_NAME.split("^")[0] in str(pydicom.dcmread(
        next(_series(copy).glob("*.dcm"))).PatientName)


def test_embedded_cohort_table(small_cohort):
    cohort = load_embedded(small_cohort)
    assert len(cohort.table) == 32 and cohort.rejects.empty
    assert set(cohort.table.modality) == {"CT", "DWI"}
    assert cohort.table.groupby("patient_id").size().eq(2).all()


def test_isles22_layout(tmp_path, small_cohort):
    src = small_cohort / "sub-0001/dwi"
    pid = "sub-strokecase0001"
    dwi = tmp_path / "rawdata" / pid / "ses-0001" / "dwi"
    dwi.mkdir(parents=True)
    shutil.copy(src / "sub-0001_rec-TRACE_dwi.nii.gz", dwi / f"{pid}_ses-0001_dwi.nii.gz")
    shutil.copy(src / "sub-0001_rec-ADC_dwi.nii.gz", dwi / f"{pid}_ses-0001_adc.nii.gz")
    mask_dir = tmp_path / "derivatives" / pid / "ses-0001"
    mask_dir.mkdir(parents=True)
    shutil.copy(small_cohort / "derivatives/masks/sub-0001/sub-0001_desc-lesion_mask.nii.gz",
                mask_dir / f"{pid}_ses-0001_msk.nii.gz")
    (tmp_path / "rawdata" / "sub-strokecase0002" / "ses-0001" / "dwi").mkdir(parents=True)
    cohort = load_isles22(tmp_path)
    assert cohort.table.patient_id.tolist() == [pid]
    assert cohort.rejects.problem.tolist() == ["file not found"]
    assert "sub-strokecase0002_ses-0001_dwi.nii.gz" in cohort.rejects.file.iloc[0]
