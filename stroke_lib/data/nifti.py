"""NIfTI reading with nibabel: canonical RAS orientation, every step guarded.

Reading a damaged file can fail in nibabel, gzip, zlib or numpy at any step (header,
data, reorientation); each step that touches the file's content converts those errors
into ``DataError`` naming the file, and reorientation works on the array already in
memory, so a damaged file is rejected the same way whatever its orientation.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

from stroke_lib.data.volume import Volume
from stroke_lib.errors import DataError

#: Largest image accepted (voxels): a damaged header can claim terabytes.
MAX_VOXELS = 2**30
#: qform and sform further apart than this (mm, any affine entry) are reported.
QFORM_SFORM_TOLERANCE_MM = 1e-2


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, EOFError) or "end of" in text.lower() or "truncat" in text.lower():
        return f"the file is truncated ({type(exc).__name__}: {text or 'unexpected end of data'})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _header_notes(img: nib.spatialimages.SpatialImage) -> list[str]:
    """Orientation facts a reader should know: qform/sform disagreement, no orientation."""
    hdr = img.header
    if not isinstance(hdr, nib.Nifti1Header):  # NIfTI-2 subclasses NIfTI-1
        return []
    qform, qcode = hdr.get_qform(coded=True)
    sform, scode = hdr.get_sform(coded=True)
    if qform is not None and sform is not None:
        diff = float(np.abs(qform - sform).max())
        if diff > QFORM_SFORM_TOLERANCE_MM:
            return [f"qform and sform disagree (up to {diff:.2f} mm); used the sform "
                    f"(code {int(scode)}), as nibabel and FSL do"]
    if qform is None and sform is None:
        codes = "".join(nib.aff2axcodes(img.affine))
        return [f"orientation unknown (qform_code and sform_code are 0): assumed {codes} "
                "from the voxel sizes, as nibabel does; check left and right"]
    return []


def read_nifti(path: str | Path) -> Volume:
    """Read a 3D NIfTI file as a ``Volume`` in RAS+ orientation.

    A 4D file with one volume is squeezed. A non-RAS affine is reoriented to the closest
    canonical orientation; NaN or inf voxels are set to 0; qform/sform disagreement and an
    unknown orientation are noted. Every repair and note is listed in ``Volume.notes``.

    Raises:
        DataError naming the file: unreadable or truncated file, not 3D, an empty
        dimension, more than ``MAX_VOXELS`` voxels, a non-finite or singular affine, or no
        finite voxel.
    """
    path = Path(path)
    try:
        img = nib.load(path)
        shape = tuple(int(n) for n in img.shape)
        affine = np.asarray(img.affine, dtype=float)
        notes = _header_notes(img)
    except Exception as exc:  # nibabel, gzip, zlib and numpy raise many types on bad files
        raise DataError(path, f"not a readable NIfTI file ({_why(exc)})") from exc
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(path, f"expected a 3D image, found shape {tuple(img.shape)}")
    if 0 in shape:
        raise DataError(path, f"empty dimension: shape {shape}")
    if int(np.prod(shape, dtype=np.int64)) > MAX_VOXELS:
        raise DataError(path, f"header claims shape {shape}: too large, damaged header?")
    if not np.all(np.isfinite(affine)):
        raise DataError(path, "affine contains NaN or inf")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise DataError(path, f"singular affine (zero voxel size or collinear axes): "
                        f"{np.round(affine[:3, :3], 3).tolist()}")
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
    except Exception as exc:
        raise DataError(path, f"image data cannot be read ({_why(exc)})") from exc
    codes = "".join(nib.aff2axcodes(affine))
    if codes != "RAS":
        ornt = io_orientation(affine)
        data = apply_orientation(data, ornt)
        affine = affine @ inv_ornt_aff(ornt, shape)
        notes.append(f"reoriented from {codes} to RAS")
    bad = ~np.isfinite(data)
    if bad.all():
        raise DataError(path, "no finite voxel (all NaN or inf)")
    if bad.any():
        notes.append(f"{int(bad.sum())} NaN/inf voxels set to 0")
        data = np.where(bad, 0.0, data)
    return Volume(data=np.ascontiguousarray(data, dtype=np.float32), affine=affine,
                  source=path, notes=notes)
