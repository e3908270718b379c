"""NIfTI reading with nibabel: canonical RAS orientation, non-finite voxels reported."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from stroke_lib.data.volume import Volume
from stroke_lib.errors import DataError


def read_nifti(path: str | Path) -> Volume:
    """Read a 3D NIfTI file as a ``Volume`` in RAS+ orientation.

    A 4D file with one volume is squeezed. A non-RAS affine is reoriented to the closest
    canonical orientation, and NaN or inf voxels are set to 0; both repairs are listed in
    ``Volume.notes``.

    Raises:
        DataError: unreadable file, not 3D, or no finite voxel. The message names the file.
    """
    path = Path(path)
    try:
        img = nib.load(path)
        if img.ndim == 4 and img.shape[3] == 1:
            img = img.slicer[..., 0]
    except Exception as exc:  # nibabel raises several types for corrupt files
        raise DataError(path, f"not a readable NIfTI file ({exc})") from exc
    if img.ndim != 3:
        raise DataError(path, f"expected a 3D image, found shape {img.shape}")
    if not np.all(np.isfinite(img.affine)):
        raise DataError(path, "affine contains NaN or inf")
    notes = []
    codes = "".join(nib.aff2axcodes(img.affine))
    if codes != "RAS":
        notes.append(f"reoriented from {codes} to RAS")
        img = nib.as_closest_canonical(img)
    try:
        data = np.ascontiguousarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:
        raise DataError(path, f"image data cannot be read ({exc})") from exc
    bad = ~np.isfinite(data)
    if bad.all():
        raise DataError(path, "no finite voxel (all NaN or inf)")
    if bad.any():
        notes.append(f"{int(bad.sum())} NaN/inf voxels set to 0")
        data = np.where(bad, 0.0, data).astype(np.float32)
    return Volume(data=data, affine=img.affine.copy(), source=path, notes=notes)
