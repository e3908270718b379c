"""Loaders of the public datasets the manifests name, each on a small fixture written in
the dataset's real layout."""

from __future__ import annotations

import shutil
import struct
import unicodedata
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

import pandas as pd

from stroke_lib.__main__ import main
from stroke_lib.data import load_dataset
from stroke_lib.data.manifests import load_manifest, manifest_names
from stroke_lib.data.rsna import SUBTYPES, load_rsna_ich, read_rsna_slice
from stroke_lib.data.synthetic.writers import write_ct_series
from stroke_lib.errors import DataError


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path, monkeypatch) -> None:
    """Pseudonym salts and maps written by these loaders go to the test's folder."""
    monkeypatch.setenv("STROKE_DATA_DIR", str(tmp_path / "data"))


def _ct(folder: Path, seed: int, n: int = 4, side: int = 8) -> tuple[list[Path], np.ndarray]:
    """A small CT series (HU in -1000..1500) written by the embedded cohort's writer;
    returns its files in slice-position order and the HU volume (L, P, S axes)."""
    hu = np.random.default_rng(seed).integers(-1000, 1500, (side, side, n)).astype(float)
    return write_ct_series(folder, hu, (0.5, 0.5, 5.0), np.zeros(3), f"P{seed}",
                           f"key{seed}", "A"), hu


# ---- RSNA ICH 2019 -----------------------------------------------------------------------


def _rsna(root: Path) -> dict[str, list[str]]:
    """Two scans of four slices in RSNA's flat layout; scan 'b' stores its values the
    mis-stored way the release has (BitsStored 12, unsigned, intercept 0). Returns the
    slice IDs per scan in position order."""
    (root / "stage_2_train").mkdir(parents=True)
    ids: dict[str, list[str]] = {}
    lines = ["ID,Label"]
    for seed, scan in enumerate("ab"):
        files, hu = _ct(root / "tmp" / scan, seed)
        ids[scan] = []
        for k, path in enumerate(files):
            sid = f"ID_{seed}{k:02d}{'f' * 7}"
            ds = pydicom.dcmread(path)
            ds.PatientID = f"ID_patient{seed}"
            if scan == "b":
                ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
                ds.RescaleIntercept = "0"
                stored = np.mod(hu[:, :, k].T.astype(np.int64), 4096).astype(np.uint16)
                ds.PixelData = stored.tobytes()
            ds.save_as(root / "stage_2_train" / f"{sid}.dcm")
            ids[scan].append(sid)
            bleed = int(scan == "a" and k == 2)
            for sub in SUBTYPES:
                lines.append(f"{sid}_{sub},{bleed if sub in ('any', 'subdural') else 0}")
    lines += lines[1:4]  # the release repeats some rows
    (root / "stage_2_train.csv").write_text("\n".join(lines) + "\n")
    shutil.rmtree(root / "tmp")
    return ids


def test_rsna_slices_scans_and_labels(tmp_path):
    root = tmp_path / "rsna_ich_2019"
    ids = _rsna(root)
    cohort = load_dataset("rsna_ich_2019", root)
    t = cohort.table
    assert cohort.rejects.empty and len(t) == 8
    assert t.groupby("scan_id").slice_id.apply(list).sort_values().tolist() == [ids["a"], ids["b"]]
    assert t.groupby("scan_id").slice_index.apply(list).tolist() == [[0, 1, 2, 3]] * 2
    a = t[t.slice_id.isin(ids["a"])]
    assert a.subdural.tolist() == [0, 0, 1, 0] and a["any"].tolist() == [0, 0, 1, 0]
    assert (a.scan_any == 1).all() and (a.scan_subdural == 1).all()
    assert (t[t.slice_id.isin(ids["b"])].scan_any == 0).all()
    assert t.patient_id.nunique() == 2 and not t.patient_id.str.contains("ID_patient").any()


def test_rsna_pixel_fix_restores_hounsfield_units(tmp_path):
    root = tmp_path / "rsna"
    ids = _rsna(root)
    _, hu = _ct(tmp_path / "again", 1)
    fixed = read_rsna_slice(root / "stage_2_train" / f"{ids['b'][0]}.dcm").data[:, :, 0]
    np.testing.assert_array_equal(fixed, hu[:, :, 0])  # air at -1000, not +3096
    plain = pydicom.dcmread(root / "stage_2_train" / f"{ids['b'][0]}.dcm").pixel_array
    assert plain.max() > 3000  # what a reader without the fix sees
    good = read_rsna_slice(root / "stage_2_train" / f"{ids['a'][0]}.dcm").data[:, :, 0]
    _, hu_a = _ct(tmp_path / "again_a", 0)
    np.testing.assert_array_equal(good, hu_a[:, :, 0])  # other slices untouched


def test_rsna_bad_labels_and_files_are_rejected(tmp_path):
    root = tmp_path / "rsna"
    ids = _rsna(root)
    csv = root / "stage_2_train.csv"
    text = csv.read_text()
    a0, a1, b0, b1 = ids["a"][0], ids["a"][1], ids["b"][0], ids["b"][1]
    text = text.replace(f"{a1}_epidural,0", f"{a1}_epidural,0\n{a1}_epidural,1")  # conflict
    text = text.replace(f"{b0}_any,0", f"{b0}_any,1")  # any without a subtype
    csv.write_text(text + "ID_999999999_any,0\n")
    data = (root / "stage_2_train" / f"{b1}.dcm").read_bytes()
    (root / "stage_2_train" / f"{b1}.dcm").write_bytes(data[:400])
    (root / "stage_2_train" / "ID_unlabelled.dcm").write_bytes(
        (root / "stage_2_train" / f"{a0}.dcm").read_bytes())
    cohort = load_rsna_ich(root, validate=True)
    assert len(cohort.table) == 5
    problems = dict(zip(cohort.rejects.patient_id, cohort.rejects.problem))
    assert "listed twice with different labels" in problems[a1]
    assert "'any' is 1 but the subtypes say otherwise" in problems[b0]
    assert "truncated" in problems[b1]
    assert problems["ID_unlabelled"] == "no labels in stage_2_train.csv"
    assert problems["ID_999999999"].endswith("labels for ['epidural', 'intraparenchymal', "
                                             "'intraventricular', 'subarachnoid', 'subdural'] missing")
    assert "1 labelled slice(s) have no file" not in " ".join(problems.values())


def test_rsna_labels_file_must_have_its_form(tmp_path):
    root = tmp_path / "rsna"
    _rsna(root)
    (root / "stage_2_train.csv").write_text("ID,Label\nID_abc_bleed,1\n")
    with pytest.raises(DataError, match="ID 'ID_abc_bleed' is not ID_<slice>_<subtype>"):
        load_rsna_ich(root)


# ---- TEKNOFEST 2021 ----------------------------------------------------------------------


def _png(path: Path, value: int, mode: str = "L", shape: tuple[int, int] = (6, 5)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, value, np.uint8)).convert(mode).save(path)
    return path


def _bomb_png(side: int = 60000) -> bytes:
    """A PNG whose header claims ``side`` x ``side`` pixels (PIL's decompression-bomb guard)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b""))


def test_teknofest_class_folders_png_and_dicom(tmp_path):
    root = tmp_path / "teknofest_2021"
    _png(root / "İnme Yok" / "PNG" / "10001.png", 10)
    _png(root / "İnme Yok" / "PNG" / "10002.png", 20, "RGB")
    iskemi = unicodedata.normalize("NFD", "İskemi")  # as a zip made on macOS unpacks
    _png(root / iskemi / "PNG" / "20001.png", 30)
    _png(root / iskemi / "OVERLAY" / "20001.png", 255)
    files, hu = _ct(tmp_path / "ct", 0, n=1)
    (root / iskemi / "DICOM").mkdir()
    shutil.copy(files[0], root / iskemi / "DICOM" / "20001.dcm")
    _png(root / "Kanama" / "PNG" / "30001.png", 40)
    (root / "Kanama" / "PNG" / "30002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    _png(root / "Kanama" / "PNG" / "10001.png", 50)  # the same slice under two classes
    (root / "Kanama" / "PNG" / "30003.png").write_bytes(_bomb_png())
    cohort = load_dataset("teknofest_2021", root)
    t = cohort.table.set_index("patient_id")
    assert sorted(t.index) == ["TF-10002", "TF-20001", "TF-30001"]
    assert t.stroke_type.to_dict() == {"TF-10002": "none", "TF-20001": "ischaemic",
                                       "TF-30001": "haemorrhagic"}
    assert t.stroke.tolist() == [0, 1, 1]
    assert t.loc["TF-20001", "image"].endswith("20001.dcm")
    assert t.loc["TF-20001", "overlay"].endswith(f"{iskemi}/OVERLAY/20001.png")
    from stroke_lib.data.slices import read_slice
    np.testing.assert_array_equal(read_slice(t.loc["TF-20001", "image"]).data[:, :, 0], hu[:, :, 0])
    assert read_slice(t.loc["TF-30001", "image"]).data.max() == 40
    rej = cohort.rejects.set_index("patient_id")
    assert "not a readable PNG image" in rej.loc["TF-30002", "problem"]
    assert "too large to read safely" in rej.loc["TF-30003", "problem"]
    assert "in two class folders" in rej.loc["TF-10001", "problem"]
    assert rej.loc["TF-10002", "action"] == "repaired"  # RGB read as grey


def test_teknofest_without_class_folders(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="no class folder found"):
        load_dataset("teknofest_2021", tmp_path)


# ---- CQ500 -------------------------------------------------------------------------------


def _cq500(root: Path) -> None:
    """Two scans in CQ500's layout (thin, 5 mm and bone series) and reads for three."""
    for n in (1, 2):
        study = root / f"CQ500CT{n} CQ500CT{n}" / "Unknown Study"
        for name, z, seed in (("CT PLAIN THIN", 0.625, 0), ("CT 5mm", 5.0, 1), ("CT BONE 5mm", 5.0, 2)):
            hu = np.random.default_rng(seed).integers(-1000, 1500, (8, 8, 3)).astype(float)
            write_ct_series(study / name, hu, (0.5, 0.5, z), np.zeros(3), f"P{n}", f"k{n}{name}", "A")
    header = ["name", "Category"] + [f"{r}:{f}" for r in ("R1", "R2", "R3")
                                     for f in ("ICH", "SDH", "Fracture")]
    rows = ["CQ500-CT-1,B1,1,1,0,1,0,0,0,0,1", "CQ500-CT-2,B1,0,0,0,1,1,0,0,1,0",
            "CQ500-CT-3,B2,0,0,0,0,0,0,0,0,0"]
    (root / "reads.csv").write_text(",".join(header) + "\n" + "\n".join(rows) + "\n")


def test_cq500_majority_reads_and_series_rule(tmp_path):
    root = tmp_path / "cq500"
    _cq500(root)
    broken = sorted((root / "CQ500CT2 CQ500CT2/Unknown Study/CT 5mm").iterdir())[1]
    broken.write_bytes(broken.read_bytes()[:300])
    cohort = load_dataset("cq500", root)
    t = cohort.table
    assert t.series.tolist() == ["CT 5mm", "CT PLAIN THIN"]  # scan 2's 5 mm series is damaged
    assert t[["ICH", "SDH", "Fracture"]].values.tolist() == [[1, 0, 0], [0, 1, 0]]
    assert t.patient_id.str.startswith("P-").all() and not t.patient_id.str.contains("CQ500").any()
    problems = cohort.rejects.problem.tolist()
    assert cohort.rejects.file.tolist()[0] == str(broken) and "truncated" in problems[0]
    assert problems[1] == "reads.csv row CQ500-CT-3 has no scan folder"


def test_cq500_reads_must_be_scores(tmp_path):
    _cq500(tmp_path)
    text = (tmp_path / "reads.csv").read_text().replace("CQ500-CT-2,B1,0", "CQ500-CT-2,B1,?")
    (tmp_path / "reads.csv").write_text(text)
    with pytest.raises(DataError, match=r"CQ500-CT-2: ICH scores \['\?', '1', '0'\] are not all 0 or 1"):
        load_dataset("cq500", tmp_path)


# ---- AISD --------------------------------------------------------------------------------


def _aisd(root: Path) -> None:
    """Three cases in AISD's layout: CT series under image/ and dicom/, PNG masks."""
    for seed, (where, case) in enumerate((("image", "0073410"), ("dicom", "0091465"),
                                          ("image", "0100001"))):
        _ct(root / where / case / "CT", seed, n=3)
        for k in range(3):
            _png(root / "mask" / case / f"{k}.png", 255 if k == 1 else 0, shape=(8, 8))
    _png(root / "mask" / "0099999" / "0.png", 0)  # a mask without its CT


def test_aisd_cases_and_masks(tmp_path):
    root = tmp_path / "aisd"
    _aisd(root)
    (root / "mask" / "0100001" / "2.png").unlink()  # two mask slices for three CT slices
    cohort = load_dataset("aisd", root)
    t = cohort.table
    assert len(t) == 2 and (t.stroke_type == "ischaemic").all()
    assert not t.patient_id.str.contains("0073410|0091465").any()
    from stroke_lib.data.aisd import read_aisd_mask
    mask = read_aisd_mask(t["mask"].iloc[0])
    assert mask.data.shape == (8, 8, 3) and mask.data[:, :, 1].all() and not mask.data[:, :, 0].any()
    problems = cohort.rejects.problem.tolist()
    assert problems == ["mask (8, 8, 2) (columns, rows, slices) does not fit its CT (8, 8, 3)",
                        "mask folder has no CT series"]


# ---- ISLES 2024 --------------------------------------------------------------------------


def _isles24(root: Path, small_cohort: Path) -> None:
    src = small_cohort / "sub-0001/dwi/sub-0001_rec-TRACE_dwi.nii.gz"
    mask = small_cohort / "derivatives/masks/sub-0001/sub-0001_space-dwi_desc-lesion_mask.nii.gz"
    for i, nihss in ((1, 7), (2, "unknown"), (3, 12)):
        pid = f"sub-stroke{i:04d}"
        (root / "raw_data" / pid / "ses-01").mkdir(parents=True)
        shutil.copy(src, root / "raw_data" / pid / "ses-01" / f"{pid}_ses-01_ncct.nii.gz")
        (root / "derivatives" / pid / "ses-02").mkdir(parents=True)
        shutil.copy(mask, root / "derivatives" / pid / "ses-02" / f"{pid}_ses-02_lesion-msk.nii.gz")
        (root / "phenotype" / pid / "ses-01").mkdir(parents=True)
        pd.DataFrame({"Age": [70], "Sex": ["F"], "NIHSS at admission": [nihss], "NIHSS 24h": [3]}
                     ).to_excel(root / "phenotype" / pid / "ses-01" / f"{pid}_ses-01_demographic_baseline.xlsx",
                                index=False)
    (root / "derivatives" / "sub-stroke0003" / "ses-02" / "sub-stroke0003_ses-02_lesion-msk.nii.gz").unlink()


def test_isles24_ncct_mask_and_nihss(tmp_path, small_cohort):
    root = tmp_path / "isles_2024"
    _isles24(root, small_cohort)
    cohort = load_dataset("isles_2024", root)
    assert cohort.table.patient_id.tolist() == ["sub-stroke0001"]
    assert cohort.table.nihss.tolist() == [7.0]
    rej = cohort.rejects.set_index("patient_id")
    assert "NIHSS at admission 'unknown' is not an NIHSS score" in rej.loc["sub-stroke0002", "problem"]
    assert rej.loc["sub-stroke0002", "file"].endswith("demographic_baseline.xlsx")
    assert rej.loc["sub-stroke0003", "problem"] == "no lesion mask file in this folder"


# ---- Every manifest ----------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in manifest_names() if n != "synthetic"])
def test_data_check_names_what_is_missing_in_an_empty_folder(tmp_path, name, capsys):
    assert main(["data", "check", name, str(tmp_path)]) == 1
    out = capsys.readouterr().out
    layout = load_manifest(name)["layout"]
    for expected in [*layout.get("files", []), *layout.get("globs", [])]:
        assert f"missing: {expected}" in out
    assert f"error: {tmp_path}" in out  # the loader says what it could not find
