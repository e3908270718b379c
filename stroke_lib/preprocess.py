"""Preprocessing of CT and MRI volumes, built on MONAI transforms.

Arrays are (X, Y, Z) in RAS+ order as the loaders return them, Z the axial slice axis;
stacked outputs put channels first, (C, X, Y, Z) or (C, X, Y) as MONAI expects.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from monai.transforms import (
    NormalizeIntensity,
    ResizeWithPadOrCrop,
    ScaleIntensityRange,
    Spacing,
)
from monai.data import MetaTensor
from scipy import ndimage

#: Windows (centre, width) in HU. Brain WC40/WW80 is the clinical standard; WC40/WW30
#: and WC40/WW20 are the narrow windows of Jung and Whangbo (section 2.4: width 20-30, centre 40).
WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "stroke_narrow": (40.0, 30.0),
    "stroke_narrowest": (40.0, 20.0),
    "subdural": (75.0, 215.0),
    "bone": (600.0, 2800.0),
}

#: CTNet crops every CT to 28 slices of 5 mm (Zhang et al. 2026, "Dataset and partition").
CTNET_SLICES = 28


def window(hu: np.ndarray, window_center: float = 40.0, window_width: float = 80.0) -> np.ndarray:
    """Map HU to [0, 1]: ``center - width/2`` -> 0, ``center + width/2`` -> 1, clipped."""
    lo = window_center - window_width / 2
    t = ScaleIntensityRange(a_min=lo, a_max=lo + window_width, b_min=0.0, b_max=1.0, clip=True)
    return np.asarray(t(np.asarray(hu, np.float32)), dtype=np.float32)


def window_stack(hu: np.ndarray, windows: Sequence[tuple[float, float]]) -> np.ndarray:
    """Several windows of one HU array stacked as channels: ``(len(windows), *hu.shape)``."""
    return np.stack([window(hu, c, w) for c, w in windows])


def clip_hu(hu: np.ndarray, low: float = -1024.0, high: float = 3071.0) -> np.ndarray:
    """Clip HU to the range a 12-bit CT stores (or a narrower one)."""
    return np.clip(hu, low, high).astype(np.float32)


def ct_brain_mask(hu: np.ndarray, low: float = 0.0, high: float = 100.0) -> np.ndarray:
    """Brain mask of a head CT (X, Y, Z): soft tissue inside the skull.

    Voxels within [low, high] HU, cut from the scalp by an erosion, keeping the largest
    connected component, dilated back, holes filled slice by slice (bone excluded).
    """
    soft = (hu >= low) & (hu <= high)
    soft = ndimage.binary_erosion(soft, iterations=2)
    labels, n = ndimage.label(soft)
    if n == 0:
        return np.zeros_like(soft)
    sizes = ndimage.sum(soft, labels, range(1, n + 1))
    mask = labels == (int(np.argmax(sizes)) + 1)
    mask = ndimage.binary_dilation(mask, iterations=2) & (hu >= low) & (hu <= high)
    for k in range(mask.shape[2]):
        mask[:, :, k] = ndimage.binary_fill_holes(mask[:, :, k])
    return mask & (hu <= high)  # filled holes may enclose bone at the skull base


def crop_or_pad_slices(
    volume: np.ndarray, n_slices: int = CTNET_SLICES, mask: np.ndarray | None = None,
    fill: float | None = None,
) -> np.ndarray:
    """Keep ``n_slices`` axial slices centred on the brain (or pad to that many).

    Args:
        volume: (X, Y, Z) or (C, X, Y, Z); Z is cropped or padded.
        n_slices: slices to keep (28 as CTNet, Zhang et al. 2026).
        mask: (X, Y, Z) brain mask; the crop centres on its extent. Default: the middle.
        fill: value of padded slices; default the volume's minimum (air).
    """
    has_channel = volume.ndim == 4
    vol = volume if has_channel else volume[None]
    z = vol.shape[-1]
    fill = float(vol.min()) if fill is None else fill
    if mask is not None and mask.any():
        ks = np.flatnonzero(mask.any(axis=(0, 1)))
        centre = (ks[0] + ks[-1]) / 2
    else:
        centre = (z - 1) / 2
    start = int(round(centre - (n_slices - 1) / 2))
    out = np.full(vol.shape[:-1] + (n_slices,), fill, dtype=vol.dtype)
    src0, src1 = max(start, 0), min(start + n_slices, z)
    out[..., src0 - start : src1 - start] = vol[..., src0:src1]
    return out if has_channel else out[0]


def lesion_concat(volume: np.ndarray, k: int = 3) -> np.ndarray:
    """Each axial slice with its neighbours as channels (Jung and Whangbo, section 2.3).

    Args:
        volume: (X, Y, Z).
        k: odd number of adjacent slices; edge slices repeat the nearest slice.
    Returns:
        (Z, k, X, Y): one 2D sample per slice, its k neighbours as channels.
    """
    if k < 1 or k % 2 == 0:
        raise ValueError(f"k must be a positive odd number, got {k}")
    half = k // 2
    padded = np.pad(volume, ((0, 0), (0, 0), (half, half)), mode="edge")
    return np.stack([np.moveaxis(padded[:, :, i : i + k], -1, 0) for i in range(volume.shape[2])])


def resample(
    volume: np.ndarray, affine: np.ndarray, pixdim: Sequence[float], mode: str = "bilinear"
) -> tuple[np.ndarray, np.ndarray]:
    """Resample (X, Y, Z) to voxel size ``pixdim`` (mm) with ``monai.transforms.Spacing``.

    Use ``mode="nearest"`` for label maps. Returns the array and its new affine.
    """
    img = MetaTensor(np.ascontiguousarray(volume, np.float32)[None], affine=affine)
    out = Spacing(pixdim=tuple(pixdim), mode=mode)(img)
    return np.asarray(out[0]), np.asarray(out.affine)


def resize(volume: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Centre crop or pad (C, X, Y, Z) or (C, X, Y) to spatial ``shape``."""
    return np.asarray(ResizeWithPadOrCrop(spatial_size=tuple(shape))(volume))


def normalize_mri(volume: np.ndarray, brain: np.ndarray | None = None, method: str = "robust") -> np.ndarray:
    """Standardise an MRI within the brain (0 outside).

    Args:
        volume: (X, Y, Z) intensities.
        brain: mask of the brain; default the non-zero voxels.
        method: ``"robust"``: subtract the brain's median and divide by its interquartile
            range / 1.349 (the IQR of a standard normal), so a bright lesion leaves the
            scale of normal tissue unchanged; ``"zscore"``: mean 0 and sd 1 inside the
            brain (MONAI ``NormalizeIntensity``). With a z-score, a large DWI lesion raises
            the mean and sd and so darkens all normal tissue: a global cue of lesion
            volume that a network can learn instead of looking at the lesion.
    """
    mask = (volume > 0) if brain is None else brain.astype(bool)
    out = np.zeros_like(volume, dtype=np.float32)
    inside = volume[mask].astype(np.float32)
    if method == "zscore":
        out[mask] = np.asarray(NormalizeIntensity()(inside))
    elif method == "robust":
        q25, median, q75 = np.percentile(inside, [25, 50, 75])
        out[mask] = (inside - median) / max((q75 - q25) / 1.349, 1e-6)
    else:
        raise ValueError(f"unknown method {method!r}; choose 'robust' or 'zscore'")
    return out
