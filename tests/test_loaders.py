"""Loaders on bad input: each problem named with its file, the rest of the cohort kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from stroke_lib.data import (
    faults, load_dataset, load_embedded, load_isles22, load_soop, loaders, read_ct_series, read_nifti,
)
from stroke_lib.__main__ import main
from stroke_lib.data.manifests import load_manifest, manifest_names
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
    t = cohort.table
    assert cohort.rejects.empty and set(t.modality) == {"CT", "DWI"}
    assert t.patient_id.nunique() == 16 and (t[t.modality == "DWI"].groupby("patient_id").size() == 1).all()
    baseline = t[(t.modality == "CT") & (t.followup == 0)]
    assert len(baseline) == 16 and baseline.patient_id.is_unique
    followups = t[(t.modality == "CT") & (t.followup > 0)]
    assert (followups.stroke_type == "ischaemic").all()
    series = len(list((small_cohort / "sourcedata/ct").glob("*/NCCT_HEAD*")))
    assert len(t) == 16 + series


def test_isles22_layout(tmp_path, small_cohort):
    src = small_cohort / "sub-0001/dwi"
    pid = "sub-strokecase0001"
    dwi = tmp_path / "rawdata" / pid / "ses-0001" / "dwi"
    dwi.mkdir(parents=True)
    shutil.copy(src / "sub-0001_rec-TRACE_dwi.nii.gz", dwi / f"{pid}_ses-0001_dwi.nii.gz")
    shutil.copy(src / "sub-0001_rec-ADC_dwi.nii.gz", dwi / f"{pid}_ses-0001_adc.nii.gz")
    mask_dir = tmp_path / "derivatives" / pid / "ses-0001"
    mask_dir.mkdir(parents=True)
    shutil.copy(small_cohort / "derivatives/masks/sub-0001/sub-0001_space-dwi_desc-lesion_mask.nii.gz",
                mask_dir / f"{pid}_ses-0001_msk.nii.gz")
    (tmp_path / "rawdata" / "sub-strokecase0002" / "ses-0001" / "dwi").mkdir(parents=True)
    cohort = load_isles22(tmp_path)
    assert cohort.table.patient_id.tolist() == [pid]
    assert cohort.rejects.problem.tolist() == ["file not found"]
    assert "sub-strokecase0002_ses-0001_dwi.nii.gz" in cohort.rejects.file.iloc[0]


SOOP_HEADER = ("participant_id\tsex\tage\trace\tacuteischaemicstroke\tpriorstroke\tbmi\tnihss\t"
               "gs_rankin_6isdeath\tetiology\n")


def _soop(root: Path, small_cohort: Path, rows: list[str], images: list[str]) -> Path:
    """A folder in SOOP's real layout: its participants.tsv header, ``rows``, and DWI/ADC
    (copied from the embedded cohort) for each ID in ``images``."""
    root.mkdir(parents=True)
    (root / "participants.tsv").write_text(SOOP_HEADER + "".join(r + "\n" for r in rows))
    for i, pid in enumerate(images):
        src = small_cohort / f"sub-{i + 1:04d}" / "dwi"
        dst = root / pid / "dwi"
        dst.mkdir(parents=True)
        for rec in ("TRACE", "ADC"):
            shutil.copy(src / f"sub-{i + 1:04d}_rec-{rec}_dwi.nii.gz", dst / f"{pid}_rec-{rec}_dwi.nii.gz")
    return root


SOOP_ROWS = [
    "sub-2\tM\t78\tw\t1\t0\t22.84\t17\tn/a\t\"2: Cardioembolism (e.g., atrial fibrillation/flutter)\"",
    "sub-3\tF\t87\tw\t1\t1\t19.23\t15\t6\t5: Cryptogenic Stroke",
    "sub-6\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a",
    "sub-38\tF\t89+\tw\t1\t0\tn/a\t12\tn/a\t\"1: Large-artery atherosclerosis\"",
    "sub-40\tM\t60\tb\t1\t0\t30.1\tunknown\t2\t5: Cryptogenic Stroke",
    "sub-41\tM\t60\tb\t1\t0\tinf\t-Infinity\t2.5\t5: Cryptogenic Stroke",
]


def test_soop_real_participants_table(tmp_path, small_cohort):
    root = _soop(tmp_path / "soop", small_cohort, SOOP_ROWS, ["sub-2", "sub-3", "sub-6", "sub-38", "sub-40"])
    cohort = load_soop(root)
    t = cohort.table.set_index("patient_id")
    assert list(t.index) == ["sub-2", "sub-3", "sub-38"]
    assert t.nihss.dtype.kind == "f" and t.age.dtype.kind == "f"
    assert t.loc["sub-38", "age"] == 89 and t.loc["sub-2", "nihss"] == 17
    assert np.isnan(t.loc["sub-2", "gs_rankin_6isdeath"]) and np.isnan(t.loc["sub-38", "bmi"])
    assert set(t.site) == {"SOOP"}
    assert t.loc["sub-2", "etiology"].startswith("2: Cardioembolism")
    assert list(cohort.table.columns[:6]) == ["patient_id", "scan_id", "site", "modality", "image", "adc"]
    rej = cohort.rejects.set_index("patient_id")
    assert rej.loc["sub-38", "action"] == "repaired" and "'89+' read as 89" in rej.loc["sub-38", "problem"]
    assert rej.loc["sub-40", "action"] == "skipped"
    assert "sub-40" in rej.loc["sub-40", "problem"] and "'unknown'" in rej.loc["sub-40", "problem"]
    assert rej.loc["sub-6", "problem"] == "participant sub-6: nihss is empty"
    sub41 = cohort.rejects[cohort.rejects.patient_id == "sub-41"].set_index("action").problem
    assert sub41["skipped"] == ("participant sub-41: nihss '-Infinity' is not a number; fix the "
                                "value or leave it n/a")
    assert sorted(sub41["repaired"]) == [
        "participant sub-41: bmi 'inf' is not a number; read as missing",
        "participant sub-41: gs_rankin_6isdeath '2.5' is not a whole number; read as missing"]
    assert (rej.file == str(root / "participants.tsv")).all()


def test_soop_duplicate_rows_are_an_error(tmp_path, small_cohort):
    root = _soop(tmp_path / "soop", small_cohort, SOOP_ROWS + SOOP_ROWS[:2], ["sub-2"])
    with pytest.raises(DataError, match=r"more than once: \['sub-2', 'sub-3'\]") as err:
        load_soop(root)
    assert err.value.path == root / "participants.tsv"


def test_soop_folders_and_rows_that_do_not_match(tmp_path, small_cohort):
    rows = [SOOP_ROWS[0], SOOP_ROWS[1].replace("sub-3", "SUB-3 "), SOOP_ROWS[3]]
    root = _soop(tmp_path / "soop", small_cohort, rows, ["sub-2", "sub-3", "sub-77"])
    cohort = load_soop(root)
    assert cohort.table.patient_id.tolist() == ["sub-2"]
    skipped = cohort.rejects[cohort.rejects.action == "skipped"].set_index("patient_id")
    assert skipped.loc["sub-77", "problem"] == "image folder has no row in participants.tsv"
    assert skipped.loc["sub-3", "file"] == str(root / "sub-3")
    assert "hint: participant_id 'SUB-3 ' differs only in case" in skipped.loc["sub-3", "problem"]
    assert "hint: folder 'sub-3'" in skipped.loc["SUB-3 ", "problem"]
    assert skipped.loc["sub-38", "problem"].startswith("participants.tsv row has no image folder")
    assert "hint" not in skipped.loc["sub-38", "problem"]


def test_soop_sessions_give_one_row_each(tmp_path, small_cohort):
    root = _soop(tmp_path / "soop", small_cohort, SOOP_ROWS[:1], [])
    for ses, src in (("ses-1", "sub-0001"), ("ses-2", "sub-0002")):
        dst = root / "sub-2" / ses / "dwi"
        dst.mkdir(parents=True)
        for rec in ("TRACE", "ADC"):
            shutil.copy(small_cohort / src / "dwi" / f"{src}_rec-{rec}_dwi.nii.gz",
                        dst / f"sub-2_{ses}_rec-{rec}_dwi.nii.gz")
    cohort = load_soop(root)
    assert cohort.table.scan_id.tolist() == ["sub-2_ses-1_dwi", "sub-2_ses-2_dwi"]
    assert cohort.table.session.tolist() == ["ses-1", "ses-2"] and cohort.rejects.empty


def test_adc_on_another_grid_than_its_dwi(copy):
    adc = copy / "sub-0002/dwi/sub-0002_rec-ADC_dwi.nii.gz"
    img = nib.load(adc)
    nib.save(nib.Nifti1Image(img.get_fdata()[::2, ::2], img.affine @ np.diag([2, 2, 1, 1])), adc)
    cohort = load_soop(copy)
    assert "sub-0002" not in set(cohort.table.patient_id) and len(cohort.table) == 3
    row = cohort.rejects.iloc[0]
    assert row.file == str(adc) and "differs from its DWI" in row.problem


def test_load_dataset_default_location(tmp_path, small_cohort, monkeypatch):
    monkeypatch.setenv("STROKE_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as err:
        load_dataset("soop")
    assert err.value.path == tmp_path / "soop"
    assert "datalad install" in err.value.problem and "data_root" in err.value.problem
    faults.copy_subjects(small_cohort, tmp_path / "soop", 2)
    assert load_dataset("soop", "").table.patient_id.tolist() == ["sub-0001", "sub-0002"]
    assert len(load_dataset("soop", tmp_path / "soop").table) == 2


def test_every_manifest_loader_is_reachable():
    names = loaders()
    for name in manifest_names():
        target = load_manifest(name)["loader"]
        if name != "synthetic" and target:
            assert names[name].__name__ == target.rsplit(".", 1)[1]
    assert set(names) == set(manifest_names()) - {"synthetic"}  # every dataset has a loader


def test_data_check_reports_participants_and_grid_problems(tmp_path, small_cohort, capsys):
    rows = [SOOP_ROWS[0], SOOP_ROWS[3], SOOP_ROWS[4]]
    root = _soop(tmp_path / "soop", small_cohort, rows, ["sub-2", "sub-38", "sub-40", "sub-99"])
    (root / "dataset_description.json").write_text("{}")
    adc = root / "sub-38/dwi/sub-38_rec-ADC_dwi.nii.gz"
    img = nib.load(adc)
    nib.save(nib.Nifti1Image(img.get_fdata()[1:], img.affine), adc)
    assert main(["data", "check", "soop", str(root)]) == 0
    out = capsys.readouterr().out
    assert "loader: 1 usable scans, 3 skipped, 1 repaired" in out
    assert f"repaired: {root / 'participants.tsv'}: participant sub-38: age censored value '89+'" in out
    assert "participant sub-40: nihss 'unknown' is not a number" in out
    assert f"skipped: {root / 'sub-99'}: image folder has no row in participants.tsv" in out
    assert f"skipped: {adc}: ADC grid (shape (63, 64" in out
    (root / "participants.tsv").write_text(SOOP_HEADER + SOOP_ROWS[0] + "\n" + SOOP_ROWS[0] + "\n")
    assert main(["data", "check", "soop", str(root)]) == 1
    assert "error: " + str(root / "participants.tsv") + ": participant(s) listed more than once" in capsys.readouterr().out


def test_soop_participants_with_bom_spaces_and_a_row_without_id(tmp_path, small_cohort):
    root = _soop(tmp_path / "soop", small_cohort, [SOOP_ROWS[0], "\tF\t50\tw\t1\t0\t20\t3\t0\tx"], ["sub-2"])
    tsv = root / "participants.tsv"
    text = tsv.read_text().replace("\tnihss\t", "\tnihss \t")
    tsv.write_bytes("\ufeff".encode() + text.replace("\n", "\r\n").encode())
    cohort = load_soop(root)
    assert cohort.table.patient_id.tolist() == ["sub-2"] and cohort.table.nihss.tolist() == [17.0]
    assert cohort.rejects.problem.tolist() == ["line 3 has no participant_id"]


def test_embedded_cohort_reads_only_the_modalities_asked_for(small_cohort):
    dwi = load_embedded(small_cohort, modalities=("DWI",)).table
    ct = load_embedded(small_cohort, modalities=("CT",)).table
    both = load_embedded(small_cohort).table
    assert set(dwi.modality) == {"DWI"} and set(ct.modality) == {"CT"}
    assert len(dwi) + len(ct) == len(both)
    assert (ct.merge(both, on="scan_id", suffixes=("", "_both")).ht.fillna(-1)
            == ct.merge(both, on="scan_id", suffixes=("", "_both")).ht_both.fillna(-1)).all()
    with pytest.raises(ValueError, match="modalities"):
        load_embedded(small_cohort, modalities=("PET",))
