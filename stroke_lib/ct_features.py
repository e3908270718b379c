"""What a reader measures on a non-contrast head CT, without any label: the hypodense
infarct's volume, hyperdense vessels and deep white-matter hypodensity (leukoaraiosis).

A reader finds an early infarct by comparing the two hemispheres: a region darker than
its mirror image. ``measure_ct`` does the same. Inside the brain mask of
``preprocess.ct_brain_mask`` (eroded by ``EDGE_MM`` so that partial volume with the skull
does not count), the CT is smoothed in-plane (Gaussian, ``SMOOTH_PX`` pixels), mirrored
left-right and aligned to itself (the rotation about the slice normal and the shift that
best overlap the mirrored brain mask with the brain mask, ``MIRROR_ANGLES_DEG`` x
``MIRROR_SHIFTS_PX``), and:

- ``infarct_ml``: brain darker than its mirror image by more than ``ASYMMETRY_HU`` and
  brighter than CSF (``CSF_MAX_HU``), in connected groups of at least
  ``MIN_COMPONENT_ML``. An early infarct is only 2-6 HU darker than normal tissue (von
  Kummer et al., Radiology 2001), so this sees the later, clearer hypodensity best.
- ``hyperdense_ml``: voxels of ``HYPERDENSE_HU`` (a thrombosed artery is 60-80 HU against
  40-45 HU of flowing blood; calcification and bone are brighter).
- ``leukoaraiosis_share``: the share of the deep brain (farther than ``DEEP_MM`` from
  the brain's surface) below ``LEUKO_MAX_HU`` after smoothing, where periventricular
  white-matter disease lies.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import ndimage
from tqdm import tqdm

from stroke_lib.data import read_ct_series
from stroke_lib.data.volume import Volume
from stroke_lib.preprocess import ct_brain_mask

#: Processes ``ct_features`` measures in: the machine's cores, at most 4.
WORKERS = min(4, os.cpu_count() or 1)

EDGE_MM = 5.0
SMOOTH_PX = 1.5
ASYMMETRY_HU = 6.0
CSF_MAX_HU = 12.0
MIN_COMPONENT_ML = 1.0
HYPERDENSE_HU = (55.0, 90.0)
DEEP_MM = 25.0
LEUKO_MAX_HU = 24.0
MIRROR_ANGLES_DEG = range(-9, 10, 3)
MIRROR_SHIFTS_PX = range(-6, 7)


def _mirror_alignment(brain: np.ndarray) -> tuple[float, int]:
    """(angle in degrees, shift in pixels along axis 0) that best overlaps the left-right
    mirror image of ``brain`` (X, Y, Z) with ``brain`` (Dice)."""
    best, out = -1.0, (0.0, 0)
    flipped = brain[::-1].astype(np.float32)
    for angle in MIRROR_ANGLES_DEG:
        turned = ndimage.rotate(flipped, angle, axes=(0, 1), reshape=False, order=0) > 0.5
        for shift in MIRROR_SHIFTS_PX:
            moved = np.roll(turned, shift, axis=0)
            dice = 2 * float((moved & brain).sum()) / max(float(moved.sum() + brain.sum()), 1.0)
            if dice > best:
                best, out = dice, (float(angle), shift)
    return out


def _mirrored(volume: np.ndarray, angle: float, shift: int, order: int = 1) -> np.ndarray:
    turned = ndimage.rotate(volume[::-1], angle, axes=(0, 1), reshape=False, order=order)
    return np.roll(turned, shift, axis=0)


def measure_ct(ct: Volume) -> dict[str, float]:
    """``infarct_ml``, ``hyperdense_ml`` and ``leukoaraiosis_share`` of one CT (module
    docstring); ``brain_ml`` is the brain mask's volume."""
    hu = ct.data
    spacing = np.asarray(ct.spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    brain = ct_brain_mask(hu)
    depth = ndimage.distance_transform_edt(brain, sampling=spacing)
    core = depth > EDGE_MM
    if not core.any():
        return {"brain_ml": float(brain.sum() * voxel_ml), "infarct_ml": 0.0, "hyperdense_ml": 0.0,
                "leukoaraiosis_share": 0.0}
    fill = np.where(brain, np.clip(hu, 0, 80), np.median(hu[core])).astype(np.float32)
    smooth = ndimage.gaussian_filter(fill, (SMOOTH_PX, SMOOTH_PX, 0))
    angle, shift = _mirror_alignment(brain)
    both = core & (_mirrored(core.astype(np.float32), angle, shift) > 0.5)
    hypo = both & (smooth - _mirrored(smooth, angle, shift) < -ASYMMETRY_HU) & (smooth > CSF_MAX_HU)
    labels, n = ndimage.label(hypo)
    if n:
        sizes = ndimage.sum(hypo, labels, range(1, n + 1)) * voxel_ml
        hypo = np.isin(labels, 1 + np.flatnonzero(sizes >= MIN_COMPONENT_ML))
    deep = depth > DEEP_MM
    hyper = core & (hu >= HYPERDENSE_HU[0]) & (hu <= HYPERDENSE_HU[1])
    leuko = deep & (smooth < LEUKO_MAX_HU) & (smooth > CSF_MAX_HU)
    return {"brain_ml": float(brain.sum() * voxel_ml), "infarct_ml": float(hypo.sum() * voxel_ml),
            "hyperdense_ml": float(hyper.sum() * voxel_ml),
            "leukoaraiosis_share": float(leuko.sum() / deep.sum()) if deep.any() else 0.0}


def ct_features(rows: pd.DataFrame, reader: Callable[[pd.Series], Volume] | None = None,
                workers: int = WORKERS) -> pd.DataFrame:
    """``measure_ct`` of each row's CT, one row per input row in order; ``reader`` reads a
    row (default: the series folder ``image``). The scans are read here, as the workers
    need them (a cohort validated on loading reads from ``dicom.SERIES_CACHE``), and
    measured in ``workers`` processes (joblib), each on its own: the same numbers as one
    process."""
    read = reader or (lambda r: read_ct_series(r.image))
    jobs = (delayed(measure_ct)(read(r))
            for _, r in tqdm(rows.iterrows(), total=len(rows), desc="measuring CT", leave=False))
    out = Parallel(n_jobs=workers)(jobs) if workers > 1 else [job[0](*job[1]) for job in jobs]
    return pd.DataFrame(out, index=rows.index)
