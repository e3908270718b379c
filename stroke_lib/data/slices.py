"""Single 2D slices (DICOM or PNG) as a one-slice ``Volume``, for slice datasets such as
RSNA ICH 2019 and TEKNOFEST 2021."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from stroke_lib.data.dicom import PixelFix, header_numbers, hu_plane, read_dicom
from stroke_lib.data.volume import Volume
from stroke_lib.errors import DataError


def read_dicom_slice(path: str | Path, fix: PixelFix | None = None) -> Volume:
    """One DICOM CT slice in HU as a ``Volume`` of shape (columns, rows, 1).

    The affine scales by PixelSpacing (1 mm when absent) and is not placed in the
    patient frame: slice datasets are used slice by slice.

    Raises:
        DataError naming the file (see ``read_dicom`` and ``hu_plane``).
    """
    path = Path(path)
    ds = read_dicom(path)
    plane = hu_plane(ds, path, fix)
    spacing = header_numbers(ds, path, "PixelSpacing", 2) if "PixelSpacing" in ds else np.ones(2)
    return Volume(data=np.ascontiguousarray(plane.T[:, :, None]),
                  affine=np.diag([spacing[1], spacing[0], 1.0, 1.0]), source=path)


def read_png_slice(path: str | Path) -> Volume:
    """One greyscale PNG slice (display values, not HU) as a ``Volume`` of shape
    (columns, rows, 1) with a 1-pixel affine. Colour PNGs are converted to grey (noted).

    Raises:
        DataError naming the file: not a readable image, truncated, or empty.
    """
    path = Path(path)
    notes = []
    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "I", "I;16", "F"):
                notes.append(f"{img.mode} image converted to greyscale")
                img = img.convert("L")
            data = np.asarray(img, dtype=np.float32)
    except Image.DecompressionBombError as exc:
        raise DataError(path, f"PNG header claims an image too large to read safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise DataError(path, f"not a readable PNG image ({type(exc).__name__}: {exc})") from exc
    if data.ndim != 2 or 0 in data.shape:
        raise DataError(path, f"expected a 2D greyscale slice, found shape {data.shape}")
    return Volume(data=np.ascontiguousarray(data.T[:, :, None]), affine=np.eye(4), source=path,
                  notes=notes)


def read_slice(path: str | Path) -> Volume:
    """A slice by its extension: ``.dcm`` (or none) through pydicom, ``.png`` through PIL."""
    path = Path(path)
    return read_png_slice(path) if path.suffix.lower() == ".png" else read_dicom_slice(path)
