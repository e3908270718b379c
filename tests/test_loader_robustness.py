"""Loaders on damaged files that no one here wrote by hand: every kind of bad DICOM and
NIfTI the issue lists, a truncation sweep and random single-byte changes. A damaged scan
is either read exactly as plain pydicom / nibabel read it, or rejected naming its file;
no exception escapes a cohort loader, and the undamaged scans are all kept."""

from __future__ import annotations

import copy
import gzip
import shutil
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.pixels import apply_rescale

from stroke_lib.data import dicom as dicom_module
from stroke_lib.data import read_ct_series, read_nifti
from stroke_lib.data.cohort import load_ct_series_folders, load_soop
from stroke_lib.data.synthetic.writers import write_ct_series
from stroke_lib.errors import DataError

N_SLICES, SIDE, STEP = 6, 12, 5.0


def _series(folder: Path, seed: int = 0) -> list[Path]:
    """A small CT series (SIDE x SIDE x N_SLICES, 1 x 1 x 5 mm, distinct random HU) in
    the layout of the embedded cohort; returns its files in slice-position order."""
    hu = np.random.default_rng(seed).integers(-1000, 2000, (SIDE, SIDE, N_SLICES)).astype(float)
    return write_ct_series(folder, hu, (1.0, 1.0, STEP), np.array([-6.0, -6.0, 0.0]),
                           f"P{seed}", f"key{seed}", "A")


def _edit(path: Path, change: Callable[[pydicom.Dataset], None]) -> Path:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)
    return path


def _set(keyword: str, value: object) -> Callable[[pydicom.Dataset], None]:
    def change(ds: pydicom.Dataset) -> None:
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return change


def _malform(path: Path, keyword: str, placeholder: str, bad: str) -> Path:
    """Write ``bad`` (a string pydicom refuses to set) as the value of ``keyword``: set the
    valid ``placeholder`` of the same length, then change its bytes in the file."""
    assert len(placeholder) == len(bad)
    _edit(path, _set(keyword, placeholder.split("\\")))
    data = path.read_bytes()
    assert data.count(placeholder.encode()) == 1
    path.write_bytes(data.replace(placeholder.encode(), bad.encode()))
    return path


def _cut_before_pixels(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b"\xe0\x7f\x10\x00")])
    return path


def _strip_preamble(path: Path) -> Path:
    """Keep only the data set: no preamble, no DICM prefix, no file meta group."""
    data = path.read_bytes()
    assert data[128:136] == b"DICM\x02\x00\x00\x00"  # (0002,0000) group length comes first
    group_length = int.from_bytes(data[140:144], "little")
    path.write_bytes(data[144 + group_length:])
    return path


def _tilt(files: list[Path], degrees: float = 15.0) -> Path:
    shift = STEP * np.tan(np.radians(degrees))
    for k, path in enumerate(files):
        _edit(path, lambda ds, k=k: setattr(
            ds, "ImagePositionPatient", [ds.ImagePositionPatient[0],
                                         f"{float(ds.ImagePositionPatient[1]) + k * shift:.4f}",
                                         ds.ImagePositionPatient[2]]))
    return files[0].parent


def _smaller_slice(path: Path) -> Path:
    def change(ds: pydicom.Dataset) -> None:
        ds.Rows = ds.Columns = SIDE - 2
        ds.PixelData = np.zeros((SIDE - 2, SIDE - 2), np.int16).tobytes()
    return _edit(path, change)


def _multi_frame(path: Path) -> Path:
    def change(ds: pydicom.Dataset) -> None:
        ds.NumberOfFrames = 2
        ds.PixelData = ds.PixelData * 2
    return _edit(path, change)


def _colour(path: Path) -> Path:
    def change(ds: pydicom.Dataset) -> None:
        ds.SamplesPerPixel, ds.PlanarConfiguration, ds.PhotometricInterpretation = 3, 0, "RGB"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.zeros((SIDE, SIDE, 3), np.uint8).tobytes()
    return _edit(path, change)


def _jpeg2000_without_decoder(path: Path) -> Path:
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def _second_series(files: list[Path]) -> Path:
    other = _series(files[0].parent.parent / "tmp_other", seed=99)[0]
    return Path(shutil.move(other, files[0].parent / "other_series.dcm"))


def _off_line(path: Path) -> Path:
    return _edit(path, lambda ds: setattr(ds, "ImagePositionPatient", [
        f"{float(ds.ImagePositionPatient[0]) + 3:.4f}", *ds.ImagePositionPatient[1:]]))


#: Every kind of bad CT series: name -> (damage(files) -> the file or folder a reject must
#: name, a phrase the problem must contain). ``files`` are in slice-position order.
DICOM_DAMAGE: dict[str, tuple[Callable[[list[Path]], Path], str]] = {
    "truncated pixel data": (lambda f: _truncate(f[2], 0.9), "truncated file: PixelData has"),
    "truncated inside the header": (lambda f: _truncate(f[2], 0.3), "truncated"),
    "truncated before pixel data": (lambda f: _cut_before_pixels(f[2]), "truncated?"),
    "empty file": (lambda f: _truncate(f[2], 0.0), "not a DICOM file"),
    "text file in the series": (lambda f: _write(f[0].parent / "notes.txt", b"scanner notes\n"),
                                "not a DICOM file"),
    "no SeriesInstanceUID": (lambda f: _edit(f[1], _set("SeriesInstanceUID", None)),
                             "no SeriesInstanceUID"),
    "two series in one folder": (_second_series, "2 series in one folder"),
    "modality MR": (lambda f: _edit(f[1], _set("Modality", "MR")), "modality is MR"),
    "RescaleIntercept missing": (lambda f: _edit(f[1], _set("RescaleIntercept", None)),
                                 "RescaleIntercept is missing"),
    "RescaleSlope malformed": (lambda f: _malform(f[1], "RescaleSlope", "1.50", "1..0"),
                               "RescaleSlope is not 1 number"),
    "RescaleSlope zero": (lambda f: _edit(f[1], _set("RescaleSlope", "0")), "RescaleSlope is 0"),
    "ImagePositionPatient missing": (lambda f: _edit(f[3], _set("ImagePositionPatient", None)),
                                     "ImagePositionPatient is missing"),
    "ImagePositionPatient malformed": (lambda f: _malform(f[3], "ImagePositionPatient",
                                                                     "1\\999\\2", "1\\abc\\2"),
                                       "ImagePositionPatient is not 3 number"),
    "ImagePositionPatient two values": (lambda f: _edit(f[3], _set("ImagePositionPatient",
                                                                   ["1", "2"])),
                                        "ImagePositionPatient must be 3 finite"),
    "ImageOrientationPatient malformed": (lambda f: _malform(
        f[0], "ImageOrientationPatient", "1\\0\\0\\0\\7\\0", "1\\0\\0\\0\\x\\0"),
        "ImageOrientationPatient is not 6 number"),
    "ImageOrientationPatient not orthogonal": (lambda f: _edit(f[0], _set(
        "ImageOrientationPatient", [1, 0, 0, 1, 0, 0])), "not two orthogonal unit vectors"),
    "orientation differs in one slice": (lambda f: _edit(f[4], _set(
        "ImageOrientationPatient", [0, 1, 0, 0, 0, -1])), "orientation"),
    "PixelSpacing malformed": (lambda f: _malform(f[2], "PixelSpacing", "7\\1", "x\\1"),
                               "PixelSpacing is not 2 number"),
    "PixelSpacing zero": (lambda f: _edit(f[2], _set("PixelSpacing", ["0", "1"])),
                          "PixelSpacing [0.0, 1.0] must be positive"),
    "PixelSpacing differs in one slice": (lambda f: _edit(f[2], _set("PixelSpacing",
                                                                     ["0.8", "0.8"])),
                                          "PixelSpacing [0.8, 0.8] differs"),
    "rows and columns differ in one slice": (lambda f: _smaller_slice(f[3]),
                                             "Rows x Columns (10, 10) differs"),
    "missing slice (gap)": (lambda f: (f[3].unlink(), f[3].parent)[1], "gap (missing slices?)"),
    "duplicate slice position": (lambda f: _edit(f[3], _set(
        "ImagePositionPatient", pydicom.dcmread(f[2]).ImagePositionPatient)),
        "duplicate slice position"),
    "uneven spacing": (lambda f: _edit(f[3], lambda ds: setattr(ds, "ImagePositionPatient", [
        *ds.ImagePositionPatient[:2], f"{float(ds.ImagePositionPatient[2]) - 1.5:.4f}"])),
        "uneven spacing"),
    "gantry tilt": (_tilt, "gantry tilt of 15.0 degrees"),
    "one slice off the line of the others": (lambda f: _off_line(f[2]), "mm off the line"),
    "multi-frame file among single frames": (lambda f: _multi_frame(f[1]),
                                             "multi-frame image among other files"),
    "colour image": (lambda f: _colour(f[1]), "expected a greyscale slice"),
    "compressed, no decoder": (lambda f: _jpeg2000_without_decoder(f[0]),
                               "no decoder for it"),
    "no file at all": (lambda f: _unlink(*f), "no files found"),
}


def _truncate(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _unlink(*paths: Path) -> Path:
    for p in paths:
        p.unlink()
    return paths[-1] if len(paths) == 1 else paths[0].parent


@pytest.mark.parametrize("kind", sorted(DICOM_DAMAGE))
def test_each_bad_series_is_a_clear_error(tmp_path, kind):
    files = _series(tmp_path / "s" / "CT")
    damage, phrase = DICOM_DAMAGE[kind]
    named = damage(files)
    with pytest.raises(DataError) as err:
        read_ct_series(tmp_path / "s" / "CT")
    assert phrase in err.value.problem, err.value.problem
    assert named.name in str(err.value), str(err.value)
    assert "1.2.826" not in str(err.value)  # no UID in a message


def test_mixed_folder_keeps_every_good_series_and_rejects_each_bad_one(tmp_path):
    root = tmp_path / "ct"
    good = {f"good{i}" for i in range(3)}
    for i, name in enumerate(sorted(good)):
        _series(root / name / "CT", seed=i)
    for i, kind in enumerate(sorted(DICOM_DAMAGE)):
        DICOM_DAMAGE[kind][0](_series(root / f"bad{i:02d}" / "CT", seed=10 + i))
    _strip_preamble(_series(root / "no_preamble" / "CT", seed=5)[2])
    cohort = load_ct_series_folders(root, "*/CT", pseudonymize=False)
    assert set(cohort.table.patient_id) == good | {"no_preamble"}
    assert sorted(cohort.rejects.patient_id) == [f"bad{i:02d}" for i in range(len(DICOM_DAMAGE))]
    assert (cohort.rejects.action == "skipped").all()
    for i, kind in enumerate(sorted(DICOM_DAMAGE)):
        row = cohort.rejects.set_index("patient_id").loc[f"bad{i:02d}"]
        assert DICOM_DAMAGE[kind][1] in row.problem, (kind, row.problem)
        assert f"bad{i:02d}" in row.file


def test_file_without_preamble_reads_like_the_others(tmp_path):
    files = _series(tmp_path / "CT")
    before = read_ct_series(tmp_path / "CT").data
    _strip_preamble(files[2])
    assert files[2].read_bytes()[128:132] != b"DICM"
    np.testing.assert_array_equal(read_ct_series(tmp_path / "CT").data, before)


@pytest.mark.parametrize("index", [0, 2, N_SLICES - 1])
def test_the_slice_off_the_line_is_named(tmp_path, index):
    files = _series(tmp_path / "CT")
    _off_line(files[index])
    with pytest.raises(DataError, match="3.0 mm off the line") as err:
        read_ct_series(tmp_path / "CT")
    assert err.value.path == files[index]


def _enhanced(files: list[Path], dest: Path) -> Path:
    """The single-frame series ``files`` rewritten as one multi-frame file with functional
    groups, as an enhanced CT export lays it out (frames in reverse position order)."""
    dss = [pydicom.dcmread(p) for p in files][::-1]
    ds = copy.deepcopy(dss[0])
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                    "RescaleSlope", "RescaleIntercept", "SliceThickness"):
        delattr(ds, keyword)
    ds.NumberOfFrames = len(dss)
    ds.PixelData = b"".join(d.PixelData for d in dss)

    def item(**groups: pydicom.Dataset) -> pydicom.Dataset:
        out = pydicom.Dataset()
        for name, value in groups.items():
            setattr(out, name, pydicom.Sequence([value]))
        return out

    def element(**values: object) -> pydicom.Dataset:
        out = pydicom.Dataset()
        for name, value in values.items():
            setattr(out, name, value)
        return out

    ds.SharedFunctionalGroupsSequence = pydicom.Sequence([item(
        PlaneOrientationSequence=element(ImageOrientationPatient=dss[0].ImageOrientationPatient),
        PixelMeasuresSequence=element(PixelSpacing=dss[0].PixelSpacing, SliceThickness=STEP),
        PixelValueTransformationSequence=element(RescaleSlope=1, RescaleIntercept=-1024))])
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence([
        item(PlanePositionSequence=element(ImagePositionPatient=d.ImagePositionPatient)) for d in dss])
    dest.mkdir(parents=True)
    ds.save_as(dest / "enhanced.dcm")
    return dest / "enhanced.dcm"


def test_multi_frame_ct_is_read_frame_by_frame(tmp_path):
    files = _series(tmp_path / "CT")
    single = read_ct_series(tmp_path / "CT")
    path = _enhanced(files, tmp_path / "MF")
    multi = read_ct_series(tmp_path / "MF")
    np.testing.assert_array_equal(multi.data, single.data)
    np.testing.assert_allclose(multi.affine, single.affine, atol=1e-4)
    ds = pydicom.dcmread(path)
    del ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence
    ds.save_as(path)
    with pytest.raises(DataError, match="frame 3: ImagePositionPatient is missing") as err:
        read_ct_series(tmp_path / "MF")
    assert err.value.path == path
    ds = pydicom.dcmread(path)  # a malformed value inside frame 2's functional group
    ds.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence[0].ImagePositionPatient = ["7.77", "1", "2"]
    ds.save_as(path)
    data = path.read_bytes()
    assert data.count(b"7.77\\1\\2") == 1
    path.write_bytes(data.replace(b"7.77\\1\\2", b"x.xx\\1\\2"))
    with pytest.raises(DataError, match="frame 2: ImagePositionPatient in its PlanePositionSequence is malformed"):
        read_ct_series(tmp_path / "MF")


def test_gantry_tilt_reports_the_angle_not_a_sheared_volume(tmp_path):
    files = _series(tmp_path / "CT")
    _tilt(files, 22.0)
    _edit(files[0], _set("GantryDetectorTilt", "22"))
    with pytest.raises(DataError, match=r"gantry tilt of 22.0 degrees .*GantryDetectorTilt says '22'"):
        read_ct_series(tmp_path / "CT")


def test_a_bug_in_a_reader_is_not_hidden_in_the_rejects(tmp_path, monkeypatch):
    _series(tmp_path / "a" / "CT")

    def broken(*args: object) -> None:
        raise TypeError("a bug in the project's own code")

    monkeypatch.setattr(dicom_module, "_geometry", broken)
    with pytest.raises(TypeError, match="a bug"):
        load_ct_series_folders(tmp_path, "*/CT")


# ---- NIfTI ---------------------------------------------------------------------------


def _raw_nifti(path: Path, data: np.ndarray, sform: np.ndarray | None, qform: np.ndarray | None,
               shape: tuple[int, ...] | None = None) -> Path:
    """Write a NIfTI-1 file byte by byte from a header, so headers nibabel would refuse to
    write (singular affine, empty dimension, no orientation) can be made."""
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.float32)
    hdr.set_data_shape(shape or data.shape)
    if sform is not None:
        hdr.set_sform(sform, code=1)
    if qform is not None:
        hdr.set_qform(qform, code=1)
    hdr["vox_offset"] = 352
    raw = hdr.binaryblock + b"\x00" * 4 + np.asarray(data, np.float32).tobytes(order="F")
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def _dwi(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(500, 50, (SIDE, SIDE, 4)).astype(np.float32)


def test_nifti_geometry_problems(tmp_path):
    rng = np.random.default_rng(0)
    data, eye = _dwi(rng), np.diag([2.0, 2.0, 3.0, 1.0])
    shifted = eye.copy()
    shifted[:3, 3] = [4.0, 0, 0]
    vol = read_nifti(_raw_nifti(tmp_path / "a.nii", data, eye, shifted))
    assert vol.notes == ["qform and sform disagree (up to 4.00 mm); used the sform (code 1), "
                         "as nibabel and FSL do"]
    np.testing.assert_array_equal(vol.affine, eye)
    vol = read_nifti(_raw_nifti(tmp_path / "b.nii", data, None, None))
    assert vol.notes[0].startswith("orientation unknown (qform_code and sform_code are 0)")
    assert vol.orientation == "RAS"
    with pytest.raises(DataError, match="singular affine") as err:
        read_nifti(_raw_nifti(tmp_path / "c.nii", data, np.diag([2.0, 0.0, 3.0, 1.0]), None))
    assert err.value.path == tmp_path / "c.nii"
    with pytest.raises(DataError, match=r"empty dimension: shape \(12, 0, 4\)"):
        read_nifti(_raw_nifti(tmp_path / "d.nii", data[:, :0], eye, None, (SIDE, 0, 4)))
    with pytest.raises(DataError, match="expected a 3D image"):
        read_nifti(_raw_nifti(tmp_path / "e.nii", np.stack([data, data], -1), eye, None))
    with pytest.raises(DataError, match="too large"):
        read_nifti(_raw_nifti(tmp_path / "f.nii", data, eye, None, (2048, 2048, 1024)))


def _soop_pair(root: Path, pid: str, data: np.ndarray, affine: np.ndarray) -> Path:
    folder = root / pid / "dwi"
    folder.mkdir(parents=True)
    for rec in ("TRACE", "ADC"):
        nib.save(nib.Nifti1Image(data, affine), folder / f"{pid}_rec-{rec}_dwi.nii.gz")
    return folder / f"{pid}_rec-TRACE_dwi.nii.gz"


def _soop_root(tmp_path: Path, affine: np.ndarray) -> tuple[Path, Path]:
    """A SOOP-layout folder with a good sub-1 and a sub-2 whose DWI the test damages."""
    root = tmp_path / "soop"
    root.mkdir()
    (root / "participants.tsv").write_text("participant_id\tage\tnihss\nsub-1\t70\t4\nsub-2\t60\t9\n")
    rng = np.random.default_rng(1)
    _soop_pair(root, "sub-1", _dwi(rng), affine)
    return root, _soop_pair(root, "sub-2", _dwi(rng), affine)


LPS = np.diag([-2.0, -2.0, 3.0, 1.0])


@pytest.mark.parametrize("affine", [np.diag([2.0, 2.0, 3.0, 1.0]), LPS], ids=["RAS", "LPS"])
def test_damaged_nifti_is_rejected_whatever_its_orientation(tmp_path, affine):
    root, victim = _soop_root(tmp_path, affine)
    _truncate(victim, 0.6)
    cohort = load_soop(root)
    assert cohort.table.patient_id.tolist() == ["sub-1"]
    skipped = cohort.rejects[cohort.rejects.action == "skipped"]
    assert skipped.file.tolist() == [str(victim)]
    assert "truncated" in skipped.problem.iloc[0]


# ---- Sweeps: truncation and single-byte changes ----------------------------------------


def _plain_pydicom_volume(files: list[Path]) -> np.ndarray:
    """HU as plain pydicom gives them, stacked by the z of ImagePositionPatient, in the RAS
    voxel order of ``read_ct_series`` for this axial LPS series (x and y flipped)."""
    dss = sorted((pydicom.dcmread(p) for p in files), key=lambda d: float(d.ImagePositionPatient[2]))
    planes = [apply_rescale(d.pixel_array, d).astype(np.float32).T[::-1, ::-1] for d in dss]
    return np.stack(planes, axis=-1)


def _sweep_cases(n_bytes: int, rng: np.random.Generator, n_cuts: int, n_flips: int
                 ) -> list[tuple[str, int, int]]:
    """``n_cuts`` truncations spread over the file and ``n_flips`` random byte changes
    (position, XOR mask): (kind, position, mask)."""
    cuts = [("cut", k, 0) for k in np.unique(np.linspace(0, n_bytes - 1, n_cuts).astype(int))]
    flips = [("flip", int(k), int(v)) for k, v in
             zip(rng.integers(0, n_bytes, n_flips), rng.integers(1, 256, n_flips))]
    return cuts + flips


def _damage(original: bytes, case: tuple[str, int, int]) -> bytes:
    kind, k, v = case
    if kind == "cut":
        return original[:k]
    out = bytearray(original)
    out[k] ^= v
    return bytes(out)


def test_dicom_truncation_and_byte_flip_sweep(tmp_path):
    root = tmp_path / "ct"
    _series(root / "good" / "CT", seed=1)
    files = _series(root / "hit" / "CT", seed=2)
    victim = files[2]
    original = victim.read_bytes()
    outcomes = {"kept": 0, "rejected": 0}
    for case in _sweep_cases(len(original), np.random.default_rng(0), 30, 70):
        victim.write_bytes(_damage(original, case))
        cohort = load_ct_series_folders(root, "*/CT", pseudonymize=False)  # nothing may escape
        assert "good" in set(cohort.table.patient_id), case
        if "hit" in set(cohort.table.patient_id):
            outcomes["kept"] += 1
            expected = _plain_pydicom_volume(files)  # plain pydicom must read it too
            np.testing.assert_array_equal(read_ct_series(root / "hit" / "CT").data, expected,
                                          err_msg=str(case))
        else:
            outcomes["rejected"] += 1
            row = cohort.rejects.iloc[0]
            assert len(cohort.rejects) == 1, case
            assert victim.name in row.file + row.problem, (case, row.file, row.problem)
    assert outcomes["kept"] > 20 and outcomes["rejected"] > 20, outcomes


def _nibabel_data(path: Path) -> np.ndarray:
    img = nib.as_closest_canonical(nib.load(path))
    data = img.get_fdata(dtype=np.float32)
    return np.where(np.isfinite(data), data, 0)


#: (truncations, byte changes) per layer; changes to gzip bytes mostly fail its CRC.
SWEEP = {"nifti bytes": (40, 100), "gzip bytes": (30, 40)}


@pytest.mark.parametrize("layer", sorted(SWEEP))
def test_nifti_truncation_and_byte_flip_sweep(tmp_path, layer):
    root, victim = _soop_root(tmp_path, LPS)
    packed = victim.read_bytes()
    original = gzip.decompress(packed) if layer == "nifti bytes" else packed
    outcomes = {"kept": 0, "rejected": 0}
    for case in _sweep_cases(len(original), np.random.default_rng(1), *SWEEP[layer]):
        damaged = _damage(original, case)
        victim.write_bytes(gzip.compress(damaged, mtime=0) if layer == "nifti bytes" else damaged)
        cohort = load_soop(root)  # nothing may escape
        assert "sub-1" in set(cohort.table.patient_id), case
        if "sub-2" in set(cohort.table.patient_id):
            outcomes["kept"] += 1
            np.testing.assert_array_equal(read_nifti(victim).data, _nibabel_data(victim),
                                          err_msg=str(case))
        else:
            outcomes["rejected"] += 1
            skipped = cohort.rejects[cohort.rejects.action == "skipped"]
            assert len(skipped) == 1, case
            row = skipped.iloc[0]  # an ADC grid mismatch names the ADC and its DWI
            assert victim.name in row.file + row.problem, (case, row.file, row.problem)
    assert outcomes["rejected"] > 20, outcomes
    if layer == "nifti bytes":
        assert outcomes["kept"] > 20, outcomes


def test_folder_names_become_pseudonyms(tmp_path, monkeypatch):
    monkeypatch.setenv("STROKE_DATA_DIR", str(tmp_path / "data"))
    root = tmp_path / "hospital"
    _series(root / "Mustermann^Erika" / "CT")
    _series(root / "sub-07" / "CT", seed=1)
    _truncate(_series(root / "1234567" / "CT", seed=2)[0], 0.5)
    first = load_ct_series_folders(root, "*/CT", name="hospital")
    again = load_ct_series_folders(root, "*/CT", name="hospital")
    pd.testing.assert_frame_equal(first.table, again.table)
    alias = first.table.patient_id.iloc[0]
    assert first.table.patient_id.tolist() == [alias, "sub-07"] and alias.startswith("P-")
    assert first.table.scan_id.iloc[0].startswith("S-")
    text = first.table.drop(columns="image").to_csv() + first.rejects.patient_id.to_csv()
    assert "Mustermann" not in text and "1234567" not in text
    mapping = pd.read_csv(tmp_path / "data/pseudonyms/hospital.tsv", sep="\t", dtype=str)
    assert dict(zip(mapping.pseudonym, mapping.original))[alias] == "Mustermann^Erika"
    assert first.rejects.patient_id.iloc[0] in set(mapping.pseudonym)
    monkeypatch.setenv("STROKE_DATA_DIR", str(tmp_path / "elsewhere"))  # another salt
    assert load_ct_series_folders(root, "*/CT", name="hospital").table.patient_id.iloc[0] != alias


def test_no_uid_in_a_problem(tmp_path):
    err = DataError(tmp_path / "x.dcm", "Invalid value for VR UI: '1.2.826.0.1.3680043.8.498.1'; "
                    "spacing 0.5 mm, version 1.2.3")
    assert err.problem == "Invalid value for VR UI: '<UID>'; spacing 0.5 mm, version 1.2.3"


def test_one_slice_series_needs_a_positive_thickness(tmp_path):
    files = _series(tmp_path / "CT")
    for p in files[1:]:
        p.unlink()
    assert read_ct_series(tmp_path / "CT").spacing[2] == pytest.approx(STEP)
    _edit(files[0], _set("SliceThickness", "0"))
    with pytest.raises(DataError, match="SliceThickness 0.0 of a one-slice series") as err:
        read_ct_series(tmp_path / "CT")
    assert err.value.path == files[0]


def test_mixed_soop_folder_keeps_the_good_and_rejects_each_bad_one(tmp_path):
    """Every kind of bad NIfTI or participants row in one SOOP-layout folder."""
    rng = np.random.default_rng(3)
    ras = np.diag([2.0, 2.0, 3.0, 1.0])
    root = tmp_path / "soop"
    root.mkdir()
    good = ["sub-1", "sub-2", "sub-3"]
    bad: dict[str, tuple[Callable[[Path], object], str]] = {
        "sub-10": (lambda p: _truncate(p, 0.6), "truncated"),
        "sub-11": (lambda p: _truncate(p, 0.6), "truncated"),  # written LPS, below
        "sub-12": (lambda p: p.write_bytes(b"not an image at all"), "not a readable NIfTI file"),
        "sub-13": (lambda p: nib.save(nib.Nifti1Image(np.full((SIDE, SIDE, 4), np.nan, np.float32),
                                                      ras), p), "no finite voxel"),
        "sub-14": (lambda p: _raw_nifti(p, _dwi(rng), np.diag([2.0, 0, 3, 1]), None), "singular affine"),
        "sub-15": (lambda p: _raw_nifti(p, _dwi(rng)[:, :0], ras, None, (SIDE, 0, 4)), "empty dimension"),
        "sub-16": (lambda p: nib.save(nib.Nifti1Image(np.stack([_dwi(rng)] * 2, -1), ras), p),
                   "expected a 3D image"),
        "sub-17": (lambda p: nib.save(nib.Nifti1Image(_dwi(rng)[:-1], ras), p), "differs from its DWI"),
        "sub-18": (lambda p: p.with_name(p.name.replace("TRACE", "ADC")).unlink(), "file not found"),
        "sub-19": (lambda p: p.unlink() or p.mkdir(), "not a readable NIfTI file"),  # a folder
    }
    lines = ["participant_id\tage\tnihss"]
    for pid in [*good, *bad]:
        victim = _soop_pair(root, pid, _dwi(rng), LPS if pid == "sub-11" else ras)
        lines.append(f"{pid}\t70\t5")
        if pid in bad:
            bad[pid][0](victim)
    lines += ["sub-20\t89+\tunknown", "sub-21\t60\t50", "sub-22\t60\t4"]  # sub-22: no folder
    _soop_pair(root, "sub-23", _dwi(rng), ras)  # a folder without a row
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    expected = {**{pid: phrase for pid, (_, phrase) in bad.items()},
                "sub-20": "nihss 'unknown' is not a number", "sub-21": "nihss '50' is outside 0..42",
                "sub-22": "participants.tsv row has no image folder",
                "sub-23": "image folder has no row in participants.tsv"}
    cohort = load_soop(root)
    assert cohort.table.patient_id.tolist() == good
    skipped = cohort.rejects[cohort.rejects.action == "skipped"]
    assert sorted(skipped.patient_id) == sorted(expected)
    for pid, problem, file in zip(skipped.patient_id, skipped.problem, skipped.file):
        assert expected[pid] in problem, (pid, problem)
        assert pid in file + problem, (pid, file)


def test_a_malformed_uid_is_read_without_a_warning_that_would_print_it(tmp_path):
    """pydicom warns about an invalid UI value and quotes it; such text must not reach a page."""
    import warnings

    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset

    from stroke_lib.data.dicom import read_dicom

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / "x.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = pydicom.uid.CTImageStorage
    ds.SeriesInstanceUID = "1.2.3.4.5"
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    raw = (tmp_path / "x.dcm").read_bytes().replace(b"1.2.3.4.5", b"1.2.3.4x5")
    (tmp_path / "x.dcm").write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_dicom(tmp_path / "x.dcm").SeriesInstanceUID == "1.2.3.4x5"
