"""DICOM CT series reading with pydicom.

Slices are grouped by SeriesInstanceUID and ordered by their position along the slice
normal (ImagePositionPatient projected on the cross product of the two
ImageOrientationPatient cosines), never by InstanceNumber. Stored values become
Hounsfield units through RescaleSlope and RescaleIntercept. The result is a ``Volume`` in
RAS+ order (DICOM's own frame is LPS). No patient-identifying attribute leaves this
module: callers name scans by their own pseudonymous IDs.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset

from stroke_lib.data.volume import Volume
from stroke_lib.errors import DataError

#: Relative tolerance on slice spacing before a gap or uneven spacing is an error.
SPACING_TOLERANCE = 0.1


def _read(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path)
    except Exception as exc:
        raise DataError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc


def list_series(folder: str | Path) -> dict[str, list[Path]]:
    """Group the DICOM files under ``folder`` (recursively) by SeriesInstanceUID."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(folder, "no files found: expected a DICOM series")
    series: dict[str, list[Path]] = defaultdict(list)
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True) if _is_dicom(path) else None
        if ds is None or "SeriesInstanceUID" not in ds:
            raise DataError(path, "not a DICOM image file (no SeriesInstanceUID)")
        series[str(ds.SeriesInstanceUID)].append(path)
    return dict(series)


def _is_dicom(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _pixels(ds: Dataset, path: Path) -> np.ndarray:
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    try:
        return ds.pixel_array
    except Exception as exc:
        if ts is not None and ts.is_compressed:
            raise DataError(
                path,
                f"compressed transfer syntax {ts.name} ({ts}) and no decoder for it: "
                "install pylibjpeg with pylibjpeg-libjpeg/-openjpeg, or python-gdcm",
            ) from exc
        raise DataError(path, f"pixel data cannot be decoded ({type(exc).__name__}: {exc})") from exc


def read_ct_series(folder: str | Path) -> Volume:
    """Read the single CT series in ``folder`` as a HU ``Volume`` (RAS+, mm).

    Raises:
        DataError naming the file or folder when: a file is unreadable or truncated; the
        folder holds more than one series; the modality is not CT; RescaleSlope or
        RescaleIntercept is missing; orientations differ between slices; two slices share
        a position; the spacing has a gap (missing slices) or is uneven; the pixel data is
        compressed and no decoder is installed.
    """
    folder = Path(folder)
    groups = list_series(folder)
    if len(groups) > 1:
        desc = ", ".join(f"{uid} ({len(p)} files)" for uid, p in groups.items())
        raise DataError(folder, f"{len(groups)} series in one folder: {desc}; give one series")
    paths = next(iter(groups.values()))
    slices = []
    for path in paths:
        ds = _read(path)
        modality = ds.get("Modality", "")
        if modality != "CT":
            raise DataError(path, f"modality is {modality or 'missing'}, expected CT")
        for tag in ("RescaleSlope", "RescaleIntercept"):
            if tag not in ds:
                raise DataError(path, f"{tag} is missing: stored values cannot become HU")
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            if tag not in ds:
                raise DataError(path, f"{tag} is missing: slice geometry unknown")
        slices.append((path, ds))

    iop = np.array([float(v) for v in slices[0][1].ImageOrientationPatient])
    for path, ds in slices[1:]:
        other = np.array([float(v) for v in ds.ImageOrientationPatient])
        if not np.allclose(other, iop, atol=1e-3):
            raise DataError(
                path, f"orientation {other.round(3).tolist()} differs from {iop.round(3).tolist()} "
                f"of {slices[0][0].name}: mixed orientations in one series"
            )
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    pos = np.array([np.dot([float(v) for v in ds.ImagePositionPatient], normal) for _, ds in slices])
    order = np.argsort(pos, kind="stable")
    slices = [slices[i] for i in order]
    pos = pos[order]
    if len(slices) > 1:
        steps = np.diff(pos)
        for i, step in enumerate(steps):
            if step < 1e-3:
                raise DataError(
                    slices[i + 1][0],
                    f"duplicate slice position {pos[i + 1]:.2f} mm, also in {slices[i][0].name}",
                )
        spacing_z = float(np.median(steps))
        for i, step in enumerate(steps):
            if abs(step - spacing_z) > SPACING_TOLERANCE * spacing_z:
                kind = "gap (missing slices?)" if step > spacing_z else "uneven spacing"
                raise DataError(
                    slices[i + 1][0],
                    f"{kind}: {step:.2f} mm from {slices[i][0].name}, expected {spacing_z:.2f} mm",
                )
    else:
        spacing_z = float(slices[0][1].get("SliceThickness", 1.0))

    planes = []
    for path, ds in slices:
        arr = _pixels(ds, path).astype(np.float32)
        planes.append(arr * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        raise DataError(folder, f"slices differ in size: {sorted(shapes)}")
    # pixel_array is (rows, columns); the volume's axis 0 follows columns (row cosine).
    hu = np.stack([p.T for p in planes], axis=-1)
    dr, dc = (float(v) for v in slices[0][1].PixelSpacing)  # row spacing, column spacing
    lps = np.eye(4)
    lps[:3, 0] = row * dc
    lps[:3, 1] = col * dr
    lps[:3, 2] = normal * spacing_z
    lps[:3, 3] = [float(v) for v in slices[0][1].ImagePositionPatient]
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    img = nib.as_closest_canonical(nib.Nifti1Image(hu, ras))
    return Volume(
        data=np.ascontiguousarray(img.dataobj, dtype=np.float32), affine=img.affine.copy(),
        source=folder,
    )
