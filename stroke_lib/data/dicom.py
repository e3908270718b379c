"""DICOM CT series reading with pydicom.

Slices are grouped by SeriesInstanceUID and ordered by their position along the slice
normal (ImagePositionPatient projected on the cross product of the two
ImageOrientationPatient cosines), never by InstanceNumber. Stored values become
Hounsfield units through RescaleSlope and RescaleIntercept. The result is a ``Volume`` in
RAS+ order (DICOM's own frame is LPS).

Geometry is checked as dcm2niix checks it: every slice must share rows, columns,
PixelSpacing and orientation (the odd file is named); positions must step evenly along
the normal (gaps and duplicates named); a gantry-tilted series, whose positions drift
in-plane from slice to slice, is rejected with its tilt angle rather than loaded onto a
sheared grid; a multi-frame (enhanced) CT is read frame by frame from its functional
groups. Anything wrong in a file's
content, including a value pydicom cannot convert, raises ``DataError`` naming that file.
No patient-identifying attribute or UID leaves this module: callers name scans by their
own pseudonymous IDs.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from stroke_lib.data import read_cache, volume
from stroke_lib.data.read_cache import ReadCache, Stamp, file_stamps
from stroke_lib.data.volume import Volume
from stroke_lib.errors import DataError
from stroke_lib.paths import data_dir

#: Relative tolerance on slice spacing before a gap or uneven spacing is an error.
SPACING_TOLERANCE = 0.1
#: In-plane drift of slice positions (mm over the series) above which it is tilted.
TILT_TOLERANCE_MM = 0.2
#: Tolerance on direction cosines (unit length, orthogonality, equality between slices).
COSINE_TOLERANCE = 1e-3

_TRUNCATION_ERRORS = (EOFError, struct.error, BytesLengthException)


def _short(value: object, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _truncated_element(ds: Dataset) -> str:
    """Which element ends before its declared length and how short it is, else ``""``.

    pydicom silently keeps what it could read of a value cut off by the end of the file;
    only the raw element's declared length reveals it (checked on the last element, the
    one a truncation cuts).
    """
    for part in (ds.get("file_meta"), ds):
        tags = list(part.keys()) if part is not None else []
        raw = part.get_item(tags[-1]) if tags else None
        if (isinstance(raw, RawDataElement) and raw.value is not None
                and raw.length != 0xFFFFFFFF and len(raw.value) < raw.length):
            name = pydicom.datadict.keyword_for_tag(raw.tag) or str(raw.tag)
            return f"{name} has {len(raw.value)} of its {raw.length} bytes"
    if len(ds) == 0:
        return "nothing follows the file meta information"
    return ""


def _note_transfer_syntax(ds: Dataset) -> None:
    """Give a data set read without file meta the transfer syntax it was read with, so its
    pixel data can be decoded."""
    if "TransferSyntaxUID" in ds.get("file_meta", {}):
        return
    implicit, little = ds.original_encoding
    ds.file_meta = ds.get("file_meta") or FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit
        else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def read_dicom(path: str | Path, header_only: bool = False) -> Dataset:
    """Read one DICOM file, also one without the 128-byte preamble and ``DICM`` prefix.

    Raises:
        DataError naming the file: not DICOM, damaged, or truncated (said as such).
    """
    path = Path(path)
    # pydicom warns about malformed values it can still read (an invalid UID, an unknown
    # VR); the warning text quotes the value (a UID, a name) and would reach a chapter's
    # page. The values a series needs are checked where they are used.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _read_dicom(path, header_only)


def _read_dicom(path: Path, header_only: bool) -> Dataset:
    try:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=header_only)
        except InvalidDicomError:
            ds = pydicom.dcmread(path, stop_before_pixels=header_only, force=True)
            if "SOPClassUID" not in ds and "SeriesInstanceUID" not in ds:
                raise DataError(path, "not a DICOM file (no DICM prefix, and it does not "
                                "parse as a DICOM data set)") from None
            _note_transfer_syntax(ds)
        cut = _truncated_element(ds)
        for _ in ds:  # convert every element now, so a malformed value fails here
            pass
    except DataError:
        raise
    except _TRUNCATION_ERRORS as exc:
        raise DataError(path, f"truncated or damaged DICOM file: it ends or breaks inside an "
                        f"element ({type(exc).__name__}); copy it again") from exc
    except Exception as exc:  # pydicom raises many types on malformed content
        raise DataError(path, f"not a readable DICOM file ({type(exc).__name__}: "
                        f"{_short(str(exc), 120)})") from exc
    if cut:
        raise DataError(path, f"truncated file: {cut}; copy it again")
    return ds


def header_numbers(ds: Dataset, path: Path, keyword: str, n: int) -> np.ndarray:
    """``n`` finite numbers from ``keyword`` or a ``DataError`` naming the file."""
    if keyword not in ds:
        raise DataError(path, f"{keyword} is missing")
    try:
        value = ds[keyword].value
        multi = isinstance(value, (list, tuple, pydicom.multival.MultiValue))
        items = list(value) if multi else [value]
        out = np.array([float(v) for v in items], dtype=float)
    except Exception as exc:  # malformed strings: ValueError, TypeError, decode errors
        raw = _short(ds.get_item(keyword).value)
        raise DataError(path, f"{keyword} is not {n} number(s): {raw}") from exc
    if out.shape != (n,) or not np.all(np.isfinite(out)):
        raise DataError(path, f"{keyword} must be {n} finite number(s), found {_short(items)}")
    return out


def list_series(folder: str | Path) -> dict[str, list[Path]]:
    """Group the DICOM files under ``folder`` (recursively) by SeriesInstanceUID.

    Raises:
        DataError naming the file that is not a readable DICOM file or has no
        SeriesInstanceUID, or the folder when it holds no file.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(folder, "no files found: expected a DICOM series")
    series: dict[str, list[Path]] = {}
    for path in files:
        ds = read_dicom(path, header_only=True)
        series.setdefault(_series_uid(ds, path), []).append(path)
    return series


def _series_uid(ds: Dataset, path: Path) -> str:
    try:
        uid = str(ds.SeriesInstanceUID) if "SeriesInstanceUID" in ds else ""
    except Exception as exc:
        raise DataError(path, "SeriesInstanceUID cannot be read") from exc
    if not uid:
        raise DataError(path, "not a DICOM image file (no SeriesInstanceUID)")
    return uid


#: What decodes and keeps a series: this module's, ``volume``'s and ``read_cache``'s code,
#: pydicom and numpy. A cached series of another reader is never read back.
READER_VERSION = hashlib.sha256(b"".join(
    [Path(__file__).read_bytes(), Path(volume.__file__).read_bytes(), Path(read_cache.__file__).read_bytes(),
     pydicom.__version__.encode(), np.__version__.encode()])).hexdigest()[:16]

#: Decoded series by folder and file stamps (``stroke_lib.data.read_cache``): in memory, so
#: a cohort validated on loading is not decoded again when its inputs are prepared, and in
#: ``<data directory>/cache/ct-series``, so the next chapter (another process) copies it
#: instead of decoding it; safe to delete. 1 GiB of memory holds every CT of the smoke
#: cohort (about 0.5 MB a series) and a third of the full one's.
SERIES_CACHE = ReadCache(max_bytes=1 << 30, folder=lambda: data_dir() / "cache" / "ct-series",
                         version=READER_VERSION)

#: ``fix(ds, stored, intercept) -> (stored, intercept)``: a dataset's known pixel fix.
PixelFix = Callable[[Dataset, np.ndarray, float], "tuple[np.ndarray, float]"]


def hu_plane(ds: Dataset, path: Path, fix: PixelFix | None = None) -> np.ndarray:
    """One slice in Hounsfield units, shape (rows, columns), float32.

    Args:
        fix: optional fix of the stored values and intercept before rescaling (e.g.
            ``stroke_lib.data.rsna.rsna_pixel_fix``).

    Raises:
        DataError naming the file: truncated or undecodable pixel data, a missing decoder
        for a compressed transfer syntax, a multi-frame or colour image, a missing or
        zero RescaleSlope/RescaleIntercept.
    """
    if "PixelData" not in ds:
        raise DataError(path, "no Pixel Data: the file ends before the image (truncated?) "
                        "or is not an image")
    frames = _n_frames(ds, path)
    if frames > 1:
        raise DataError(path, f"multi-frame image ({frames} frames) where one slice was expected")
    slope, intercept = _rescale(ds, path)
    stored = _pixels(ds, path)
    if stored.ndim != 2:
        raise DataError(path, f"expected a greyscale slice, pixel array has shape {stored.shape}")
    if fix is not None:
        stored, intercept = fix(ds, stored, intercept)
    return stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _pixels(ds: Dataset, path: Path) -> np.ndarray:
    try:
        ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        compressed = ts is not None and ts.is_compressed
    except Exception:  # a damaged TransferSyntaxUID
        ts, compressed = None, False
    try:
        return ds.pixel_array
    except Exception as exc:  # pydicom and its decoders raise many types
        text = str(exc)
        if "less than expected" in text:
            raise DataError(path, f"truncated file: pixel data shorter than Rows x Columns "
                            f"needs ({_short(text.split('(')[-1].split(')')[0], 40)})") from exc
        if compressed:
            raise DataError(
                path,
                f"compressed transfer syntax {ts.name} and no decoder for it: "
                "install pylibjpeg with pylibjpeg-libjpeg/-openjpeg, or python-gdcm",
            ) from exc
        raise DataError(path, f"pixel data cannot be decoded ({type(exc).__name__}: "
                        f"{_short(text, 120)})") from exc


@dataclass
class _Slice:
    path: Path
    ds: Dataset
    iop: np.ndarray  # (6,) row then column direction cosines, LPS
    ipp: np.ndarray  # (3,) mm, LPS
    spacing: np.ndarray  # (2,) mm: between rows, between columns
    shape: tuple[int, int]  # rows, columns
    frame: int | None = None  # index in a multi-frame file

    @property
    def name(self) -> str:
        return self.path.name if self.frame is None else f"{self.path.name} frame {self.frame + 1}"


def _geometry(path: Path, ds: Dataset, frame: int | None = None) -> _Slice:
    """The geometry of a slice, or of one frame of a multi-frame file."""
    try:
        return _slice_geometry(path, ds, frame)
    except DataError as err:
        if frame is None:
            raise
        raise DataError(err.path, f"frame {frame + 1}: {err.problem}") from err


def _slice_geometry(path: Path, ds: Dataset, frame: int | None) -> _Slice:
    modality = ds.get("Modality", "")
    if modality != "CT":
        raise DataError(path, f"modality is {modality or 'missing'}, expected CT")
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        if tag not in ds:
            raise DataError(path, f"{tag} is missing: slice geometry unknown")
    iop = header_numbers(ds, path, "ImageOrientationPatient", 6)
    row, col = iop[:3], iop[3:]
    if (abs(np.linalg.norm(row) - 1) > 10 * COSINE_TOLERANCE
            or abs(np.linalg.norm(col) - 1) > 10 * COSINE_TOLERANCE
            or abs(np.dot(row, col)) > 10 * COSINE_TOLERANCE):
        raise DataError(path, f"ImageOrientationPatient {iop.round(4).tolist()} is not two "
                        "orthogonal unit vectors")
    spacing = header_numbers(ds, path, "PixelSpacing", 2)
    if np.any(spacing <= 0):
        raise DataError(path, f"PixelSpacing {spacing.tolist()} must be positive")
    try:
        shape = (int(ds.Rows), int(ds.Columns))
    except Exception as exc:
        raise DataError(path, "Rows or Columns is missing or not a number") from exc
    _rescale(ds, path)
    return _Slice(path, ds, iop, header_numbers(ds, path, "ImagePositionPatient", 3), spacing,
                  shape, frame)


def _consistent(slices: list[_Slice], what: str, value: Callable[[_Slice], object],
                same: Callable[[object, object], bool]) -> None:
    """Every slice's ``value`` equals the most common one, else name the odd file."""
    counts = Counter(repr(value(s)) for s in slices)
    ref = next(s for s in slices if repr(value(s)) == counts.most_common(1)[0][0])
    for s in slices:
        if not same(value(s), value(ref)):
            raise DataError(s.path, f"{what} {_short(value(s))} differs from {_short(value(ref))} "
                            f"of the other {counts.most_common(1)[0][1]} slice(s) of the series "
                            f"(e.g. {ref.name})")


def read_ct_series(
    folder: str | Path, fix: PixelFix | None = None,
    paths: list[Path] | None = None,
) -> Volume:
    """Read the single CT series in ``folder`` as a HU ``Volume`` (RAS+, mm).

    The series is one file per slice, or one multi-frame (enhanced) file whose frames are
    placed by their functional groups (``frame_headers``); either way the slices are
    ordered by position and checked the same way. A series read before (in this process
    or, through the cache folder, another) whose files are unchanged is a copy from
    ``SERIES_CACHE`` (not with ``fix``).

    Args:
        folder: the series folder (every file under it, recursively).
        fix: optional stored-value fix applied to every slice (see ``hu_plane``).
        paths: read these files instead of every file under ``folder``.

    Raises:
        DataError naming the file or folder when: a file is unreadable, truncated or not
        DICOM; the folder holds more than one series; the modality is not CT; a rescale or
        geometry attribute is missing or malformed; rows, columns, PixelSpacing or
        orientation differ between slices; the gantry is tilted; two slices share a
        position; the spacing has a gap (missing slices) or is uneven; a multi-frame file
        lacks per-frame groups or sits among other files; the pixel data is truncated or
        compressed without a decoder.
    """
    folder = Path(folder)
    if paths is None:
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise DataError(folder, "no files found: expected a DICOM series")
    stamp = _series_stamp(folder, paths) if fix is None else None  # a fix's result is not cached
    vol = SERIES_CACHE.get(stamp)
    if vol is None:
        vol = _read_series(folder, paths, fix)
        SERIES_CACHE.put(stamp, vol)
    return vol


def _series_stamp(folder: Path, paths: list[Path]) -> Stamp | None:
    files = file_stamps(paths)
    return None if files is None else (str(folder), *files)


def _read_series(folder: Path, paths: list[Path], fix: PixelFix | None) -> Volume:
    """``read_ct_series`` of ``paths`` from disk."""
    datasets = [(p, read_dicom(p)) for p in paths]
    for path, ds in datasets:  # before any other check: a file cut short lacks the rest
        if "PixelData" not in ds:
            raise DataError(path, "no Pixel Data: the file ends before the image (truncated?) "
                            "or is not an image")
    groups: dict[str, list[tuple[Path, Dataset]]] = {}
    for path, ds in datasets:
        groups.setdefault(_series_uid(ds, path), []).append((path, ds))
    if len(groups) > 1:
        desc = "; ".join(f"series {ds.get('SeriesNumber', '?')} ({len(g)} files, e.g. {p.name})"
                         for g in groups.values() for p, ds in g[:1])
        raise DataError(folder, f"{len(groups)} series in one folder: {desc}; give one series")
    frames: list[tuple[Path, Dataset, int | None]] = []
    for path, ds in datasets:
        if _n_frames(ds, path) == 1:
            frames.append((path, ds, None))
        elif len(datasets) > 1:
            raise DataError(path, "multi-frame image among other files of one series: give "
                            "the multi-frame file alone")
        else:
            frames += [(path, fds, k) for k, fds in enumerate(frame_headers(ds, path))]
    slices = [_geometry(p, ds, k) for p, ds, k in frames]
    _consistent(slices, "Rows x Columns", lambda s: s.shape, lambda a, b: a == b)
    _consistent(slices, "PixelSpacing", lambda s: s.spacing.round(4).tolist(),
                lambda a, b: np.allclose(a, b, atol=1e-3))
    _consistent(slices, "orientation", lambda s: s.iop.round(3).tolist(),
                lambda a, b: np.allclose(a, b, atol=COSINE_TOLERANCE))
    row, col = slices[0].iop[:3], slices[0].iop[3:]
    normal = np.cross(row, col)
    pos = np.array([np.dot(s.ipp, normal) for s in slices])
    order = np.argsort(pos, kind="stable")
    slices = [slices[i] for i in order]
    pos = pos[order]
    spacing_z = _slice_spacing(slices, pos)
    _check_tilt(folder, slices, normal, pos)

    if slices[0].frame is None:
        planes = [hu_plane(s.ds, s.path, fix) for s in slices]
    else:
        planes = _frame_planes(datasets[0][1], slices, fix)
    # pixel_array is (rows, columns); the volume's axis 0 follows columns (row cosine).
    hu = np.stack([p.T for p in planes], axis=-1)
    dr, dc = slices[0].spacing  # row spacing, column spacing
    lps = np.eye(4)
    lps[:3, 0] = row * dc
    lps[:3, 1] = col * dr
    lps[:3, 2] = normal * spacing_z
    lps[:3, 3] = slices[0].ipp
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    img = nib.as_closest_canonical(nib.Nifti1Image(hu, ras))
    return Volume(
        data=np.ascontiguousarray(img.dataobj, dtype=np.float32), affine=img.affine.copy(),
        source=folder,
    )


def _frame_planes(ds: Dataset, slices: list[_Slice], fix: PixelFix | None) -> list[np.ndarray]:
    """HU planes of the frames ``slices`` of one multi-frame file, in their order."""
    path = slices[0].path
    stored = _pixels(ds, path)
    if stored.ndim != 3 or stored.shape[0] != len(slices):
        raise DataError(path, f"expected {len(slices)} greyscale frames, pixel array has shape "
                        f"{stored.shape}")
    planes = []
    for s in slices:
        slope, intercept = _rescale(s.ds, path)
        frame = stored[s.frame]
        if fix is not None:
            frame, intercept = fix(ds, frame, intercept)
        planes.append(frame.astype(np.float32) * np.float32(slope) + np.float32(intercept))
    return planes


def _rescale(ds: Dataset, path: Path) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) of a slice or frame header, checked usable."""
    for tag in ("RescaleSlope", "RescaleIntercept"):
        if tag not in ds:
            raise DataError(path, f"{tag} is missing: stored values cannot become HU")
    slope = float(header_numbers(ds, path, "RescaleSlope", 1)[0])
    if slope == 0:
        raise DataError(path, "RescaleSlope is 0: stored values cannot become HU")
    return slope, float(header_numbers(ds, path, "RescaleIntercept", 1)[0])


def _n_frames(ds: Dataset, path: Path) -> int:
    value = str(ds.get("NumberOfFrames", "1")).strip() or "1"
    try:
        n = int(value)
    except ValueError:
        raise DataError(path, f"NumberOfFrames {value[:20]!r} is not a number") from None
    if n < 1:
        raise DataError(path, f"NumberOfFrames is {n}")
    return n


#: Functional group -> the attributes a frame header takes from it (enhanced CT).
_FRAME_GROUPS = {
    "PlanePositionSequence": ("ImagePositionPatient",),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
    "PixelMeasuresSequence": ("PixelSpacing", "SliceThickness"),
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept"),
}


def frame_headers(ds: Dataset, path: Path) -> list[Dataset]:
    """One header per frame of a multi-frame (enhanced) CT, with the geometry and rescale
    of that frame taken from its per-frame functional group, else the shared one, else
    the top level (as dcm2niix reads them).

    Raises:
        DataError naming the file when there is not one per-frame group per frame.
    """
    n = _n_frames(ds, path)
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if per is None or len(per) != n:
        raise DataError(path, f"multi-frame image ({n} frames) without one per-frame functional "
                        "group per frame: frame positions unknown")
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared = shared[0] if shared else Dataset()
    headers = []
    for frame, item in enumerate(per, start=1):
        fds = Dataset()
        for keyword in ("Modality", "Rows", "Columns", "GantryDetectorTilt"):
            if keyword in ds:
                setattr(fds, keyword, ds[keyword].value)
        for group, keywords in _FRAME_GROUPS.items():
            for keyword in keywords:
                try:
                    for source in (item.get(group), shared.get(group), [ds]):
                        if source and keyword in source[0]:
                            setattr(fds, keyword, source[0][keyword].value)
                            break
                except Exception as exc:  # values inside sequences are converted only here
                    raise DataError(path, f"frame {frame}: {keyword} in its {group} is malformed "
                                    f"({type(exc).__name__})") from exc
        headers.append(fds)
    return headers


def _slice_spacing(slices: list[_Slice], pos: np.ndarray) -> float:
    """Spacing (mm) along the normal; duplicates, gaps and uneven steps are errors."""
    if len(slices) == 1:
        ds, path = slices[0].ds, slices[0].path
        thickness = 1.0
        if "SliceThickness" in ds:
            thickness = float(header_numbers(ds, path, "SliceThickness", 1)[0])
        if thickness <= 0:
            raise DataError(path, f"SliceThickness {thickness} of a one-slice series must be "
                            "positive")
        return thickness
    steps = np.diff(pos)
    for i, step in enumerate(steps):
        if step < 1e-3:
            raise DataError(
                slices[i + 1].path,
                f"duplicate slice position {pos[i + 1]:.2f} mm, also in {slices[i].name}",
            )
    spacing_z = float(np.median(steps))
    for i, step in enumerate(steps):
        if abs(step - spacing_z) > SPACING_TOLERANCE * spacing_z:
            kind = "gap (missing slices?)" if step > spacing_z else "uneven spacing"
            raise DataError(
                slices[i + 1].path,
                f"{kind}: {step:.2f} mm from {slices[i].name}, expected {spacing_z:.2f} mm",
            )
    return spacing_z


def _line_fit(dz: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line ``points ~ a + dz * b``: (b, distance of each point from it)."""
    design = np.stack([np.ones_like(dz), dz], axis=1)
    coef = np.linalg.lstsq(design, points, rcond=None)[0]
    return coef[1], np.linalg.norm(points - design @ coef, axis=1)


def _check_tilt(folder: Path, slices: list[_Slice], normal: np.ndarray, pos: np.ndarray) -> None:
    """Reject a series whose slice positions drift in-plane: one slice off the line of the
    others (a damaged position, named), or all drifting evenly (gantry tilt, with its angle).
    """
    if len(slices) < 2:
        return
    ipp = np.array([s.ipp for s in slices])
    dz = pos - pos[0]
    drift = ipp - dz[:, None] * normal[None, :]  # in-plane part of each position, mm
    rate, off_line = _line_fit(dz, drift)
    if off_line.max() > TILT_TOLERANCE_MM and len(slices) > 2:
        # Leave each slice out in turn: the one whose removal puts the rest on a line.
        keep = np.ones(len(slices), bool)
        for i in np.argsort(-off_line):
            keep[:] = True
            keep[i] = False
            rate_i, rest = _line_fit(dz[keep], drift[keep])
            if rest.max() <= TILT_TOLERANCE_MM:
                odd = slices[int(i)]
                miss = np.linalg.norm(drift[i] - drift[keep][0] - (dz[i] - dz[keep][0]) * rate_i)
                raise DataError(odd.path, f"ImagePositionPatient {odd.ipp.round(2).tolist()} is "
                                f"{miss:.1f} mm off the line of the other slices' positions")
        raise DataError(folder, f"slice positions do not lie on a line (up to "
                        f"{off_line.max():.1f} mm off): not one stack of slices")
    extent = float(dz[-1])
    if np.linalg.norm(rate) * extent > TILT_TOLERANCE_MM:
        angle = float(np.degrees(np.arctan(np.linalg.norm(rate))))
        tag = slices[0].ds.get("GantryDetectorTilt", None)
        said = f"; GantryDetectorTilt says {_short(tag)}" if tag is not None else ""
        raise DataError(folder, f"gantry tilt of {angle:.1f} degrees (slice positions drift "
                        f"{np.linalg.norm(rate) * extent:.1f} mm in-plane over {extent:.0f} mm)"
                        f"{said}: the slices do not lie on an orthogonal grid; rejected "
                        "(convert it with dcm2niix, which corrects tilt, or re-export without "
                        "tilt)")
