"""Region inputs of chapter 05 (Jung and Whangbo, paper 004): one 2D crop per brain region.

Each ASPECTS-like region of each hemisphere (the embedded cohort's region map, labels
1..20 named ``region_names()``) gives one sample: on the axial slice where the region is
largest (its target slice), a square box around the region (its bounding box widened by
``margin`` on each side), cut from that slice and its ``half`` neighbours on either side
(edge slices repeated: ``preprocess.lesion_concat``) and resized to ``size`` x ``size``.
The crops are kept in HU, so that every window and every lesion-concatenation depth is
a view of the same array (``RegionCrops.inputs``).

A dataset without region maps (AISD, RSNA ICH 2019) gets ``hemisphere_regions``: each
hemisphere of each axial slice that holds brain is a region of its own, the brain split at
the middle of its extent from right to left (a stated simplification of the paper's
regions, which is what "lesion present per slice and side" can be scored on).

Labels per crop: the rater's state of the region (intact, old infarct or early ischaemic
sign, the cohort's ``region_<name>`` columns), and from the scan's lesion mask the share
of the region (all its slices) covered by acute infarct, old infarct and haemorrhage,
and whether a haemorrhage lies inside the crop's box on the target slice (the source
task's label).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from monai.transforms import Resize
from tqdm import tqdm

from stroke_lib.data import Volume, read_ct_series, read_nifti
from stroke_lib.data.synthetic.atlas import region_names
from stroke_lib.errors import DataError
from stroke_lib.preprocess import ct_brain_mask, lesion_concat, window

#: Region states of the cohort's labels, in class order.
REGION_STATES = ("intact", "old", "early")
#: The cohort's lesion labels (``desc-lesion_mask``): acute infarct, old infarct, haemorrhage.
ACUTE, OLD, HAEMORRHAGE = 1, 2, 3
#: Air, the fill of a box that reaches past the image (HU).
AIR_HU = -1000.0


@dataclass
class RegionCrops:
    """Region crops of a set of CT scans.

    Attributes:
        hu: float32 (N, 2 * half + 1, size, size) in HU; channel ``half`` is the target
            slice, channel ``half + j`` the slice ``j`` above it (below for negative j).
        region: bool (N, size, size): the region on the target slice, on the crop's grid.
        lesion: uint8 (N, size, size): the lesion labels on the target slice, on the crop's grid.
        rows: one row per crop: ``patient_id``, ``scan_id``, ``site``, ``region`` (e.g.
            ``"L_M2"``), ``side`` ("L"/"R"), ``slice`` (target slice index), ``box``
            (x0, x1, y0, y1 in voxels), ``state`` (``REGION_STATES`` or "" where the data
            has none), ``acute_share``, ``old_share``, ``haemorrhage_share`` (of the
            region's voxels) and ``haemorrhage`` (a bleed inside the box on the target slice).
        rejected: one sentence per scan left out, naming the file and the problem.
    """

    hu: np.ndarray
    region: np.ndarray
    lesion: np.ndarray
    rows: pd.DataFrame
    rejected: list[str] = field(default_factory=list)

    @property
    def half(self) -> int:
        return self.hu.shape[1] // 2

    def inputs(self, centre: float, width: float, k: int = 1) -> torch.Tensor:
        """The crops in the window ``centre``/``width`` (HU) mapped to [0, 1], with ``k``
        slices as channels (k odd: the target slice and ``k // 2`` neighbours each side;
        1: the target slice alone, no lesion concatenation). Returns (N, k, size, size)."""
        if k < 1 or k % 2 == 0 or k // 2 > self.half:
            raise ValueError(f"k must be odd and at most {2 * self.half + 1}, got {k}")
        lo, hi = self.half - k // 2, self.half + k // 2 + 1
        return torch.from_numpy(window(self.hu[:, lo:hi], centre, width))

    def subset(self, index: np.ndarray) -> "RegionCrops":
        return RegionCrops(self.hu[index], self.region[index], self.lesion[index],
                           self.rows.iloc[index].reset_index(drop=True), self.rejected)


def _square_box(mask2d: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """A square box (x0, x1, y0, y1) around the True pixels, widened by ``margin`` of its
    side on each side (at least 2 pixels)."""
    xs, ys = np.nonzero(mask2d)
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    side = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    side = int(np.ceil(side * (1 + 2 * margin))) + 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    return x0, x0 + side, y0, y0 + side


def _cut(stack: np.ndarray, box: tuple[int, int, int, int], fill: float) -> np.ndarray:
    """``stack[..., x0:x1, y0:y1]`` with ``fill`` where the box leaves the image."""
    x0, x1, y0, y1 = box
    nx, ny = stack.shape[-2:]
    pad = [(0, 0)] * (stack.ndim - 2) + [(max(0, -x0), max(0, x1 - nx)), (max(0, -y0), max(0, y1 - ny))]
    padded = np.pad(stack, pad, constant_values=fill)
    ox, oy = max(0, -x0), max(0, -y0)
    return padded[..., x0 + ox : x1 + ox, y0 + oy : y1 + oy]


def scan_crops(hu: np.ndarray, regions: np.ndarray, lesion: np.ndarray, names: list[str], size: int = 32,
               half: int = 2, margin: float = 0.15) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """Region crops of one scan.

    Args:
        hu: CT (X, Y, Z) in HU. regions: int (X, Y, Z), 0 outside every region, i for
            ``names[i - 1]``. lesion: int (X, Y, Z) lesion labels (``ACUTE``, ``OLD``,
            ``HAEMORRHAGE``; 0 elsewhere), on the same grid.
    Returns:
        crops (R, 2 * half + 1, size, size) HU, region masks (R, size, size), lesion labels
        on the target slice (R, size, size) and one dict
        per crop (``region``, ``side``, ``slice``, ``box``, lesion shares,
        ``haemorrhage``), for every region present in the map.
    """
    if not hu.shape == regions.shape == lesion.shape:
        raise ValueError(f"CT {hu.shape}, region map {regions.shape} and lesion mask {lesion.shape} differ in shape")
    concat = lesion_concat(hu, 2 * half + 1)  # (Z, 2 half + 1, X, Y), edge slices repeated
    resize, resize_nn = Resize((size, size), mode="bilinear"), Resize((size, size), mode="nearest")
    crops, masks, lesions, info = [], [], [], []
    for i, name in enumerate(names, start=1):
        reg = regions == i
        n = int(reg.sum())
        if n == 0:
            continue
        z = int(np.argmax(reg.sum(axis=(0, 1))))
        box = _square_box(reg[:, :, z], margin)
        crops.append(np.asarray(resize(_cut(concat[z], box, AIR_HU)), np.float32))
        masks.append(np.asarray(resize_nn(_cut(reg[None, :, :, z].astype(np.float32), box, 0.0)))[0] > 0.5)
        labels = _cut(lesion[None, :, :, z].astype(np.float32), box, 0.0)
        lesions.append(np.asarray(resize_nn(labels))[0].astype(np.uint8))
        info.append({"region": name, "side": name.split("_")[0], "slice": z, "box": box,
                     "acute_share": float((reg & (lesion == ACUTE)).sum() / n),
                     "old_share": float((reg & (lesion == OLD)).sum() / n),
                     "haemorrhage_share": float((reg & (lesion == HAEMORRHAGE)).sum() / n),
                     "haemorrhage": bool((labels == HAEMORRHAGE).any())})
    return np.stack(crops), np.stack(masks), np.stack(lesions), info


def hemisphere_regions(hu: np.ndarray, min_pixels: int = 20) -> tuple[np.ndarray, list[str]]:
    """Each hemisphere of each axial slice as a region: (X, Y, Z) int map and the names
    (``"L_z07"``, ``"R_z07"``: side and slice). The brain (``preprocess.ct_brain_mask``) of
    a slice is split at the middle of its extent along X (axis 0 runs to the patient's
    right); a half with fewer than ``min_pixels`` brain pixels is no region."""
    brain = ct_brain_mask(hu)
    regions = np.zeros(hu.shape, int)
    names: list[str] = []
    for z in range(hu.shape[2]):
        xs = np.nonzero(brain[:, :, z].any(axis=1))[0]
        if xs.size == 0:
            continue
        mid = (xs.min() + xs.max() + 1) // 2
        for side, part in (("L", slice(0, mid)), ("R", slice(mid, None))):
            half = np.zeros(brain.shape[:2], bool)
            half[part] = brain[part, :, z]
            if half.sum() >= min_pixels:
                names.append(f"{side}_z{z:02d}")
                regions[:, :, z][half] = len(names)
    return regions, names


def _cohort_regions(row: pd.Series, hu: np.ndarray) -> tuple[np.ndarray, list[str]]:
    return np.rint(read_nifti(row["regions"]).data).astype(int), region_names()


def _cohort_lesions(row: pd.Series, hu: np.ndarray) -> np.ndarray:
    return np.rint(read_nifti(row["mask"]).data).astype(int)


def region_crops(rows: pd.DataFrame, size: int = 32, half: int = 2, margin: float = 0.15,
                 reader: Callable[[pd.Series], Volume] | None = None,
                 regions_of: Callable[[pd.Series, np.ndarray], tuple[np.ndarray, list[str]]] = _cohort_regions,
                 lesions_of: Callable[[pd.Series, np.ndarray], np.ndarray] = _cohort_lesions) -> RegionCrops:
    """Region crops of every CT row (``image`` a series folder; by default ``regions`` the
    region map and ``mask`` the lesion labels, on the CT's grid, as the embedded cohort
    has them; ``region_<name>`` columns give the states).

    Args:
        reader: reads a row's CT (default ``read_ct_series(row.image)``).
        regions_of: (row, HU volume) -> (region map, region names), e.g. ``hemisphere_regions``
            of the volume.
        lesions_of: (row, HU volume) -> lesion labels (``ACUTE``, ``OLD``, ``HAEMORRHAGE``).

    A scan whose CT, region map or mask cannot be read, or whose grids differ, is left out
    and named in ``rejected`` (the scan, the file's name without its folders, the
    problem); the others go on. Raises ``DataError`` when no scan could be used.
    """
    read = reader or (lambda r: read_ct_series(r.image))
    hus, masks, lesions, records, rejected = [], [], [], [], []
    for _, r in tqdm(rows.iterrows(), total=len(rows), desc="cutting region crops", leave=False):
        try:
            hu = read(r).data
            regions, names = regions_of(r, hu)
            lesion = lesions_of(r, hu)
            crops, region, labels, info = scan_crops(hu, regions, lesion, names, size, half, margin)
        except DataError as err:
            rejected.append(f"{r.scan_id} left out: {Path(err.path).name}: {err.problem}")
            continue
        except ValueError as err:
            rejected.append(f"{r.scan_id} left out: {Path(str(r.get('mask', r.image))).name}: {err}")
            continue
        hus.append(crops)
        masks.append(region)
        lesions.append(labels)
        for d in info:
            records.append({"patient_id": r.patient_id, "scan_id": r.scan_id, "site": r.site,
                            "state": r.get(f"region_{d['region']}", ""), **d})
    if not hus:
        raise DataError(Path(str(rows.image.iloc[0])).parent if len(rows) else Path("."),
                        "no scan gave region crops: " + "; ".join(rejected[:3]))
    return RegionCrops(np.concatenate(hus), np.concatenate(masks), np.concatenate(lesions), pd.DataFrame(records),
                       rejected)


def aisd_lesions(row: pd.Series, hu: np.ndarray) -> np.ndarray:
    """AISD's lesion mask (``row.mask``, one PNG per slice) as ``ACUTE`` labels on the CT grid."""
    from stroke_lib.data.aisd import read_aisd_mask

    return np.where(read_aisd_mask(row["mask"]).data > 0, ACUTE, 0)


def rsna_lesions(row: pd.Series, hu: np.ndarray) -> np.ndarray:
    """RSNA ICH 2019's slice labels as a lesion map: ``HAEMORRHAGE`` over the brain
    (``preprocess.ct_brain_mask``) of every slice labelled any haemorrhage (the release
    has no masks, so a crop's label is its slice's)."""
    flags = np.asarray(row.slice_any, bool)
    if flags.size != hu.shape[2]:
        raise ValueError(f"{flags.size} slice labels for {hu.shape[2]} slices")
    return np.where(ct_brain_mask(hu) & flags[None, None, :], HAEMORRHAGE, 0)


def concat_crops(parts: list[RegionCrops]) -> RegionCrops:
    """Several sets of crops (of the same size and depth) as one, rows in order."""
    return RegionCrops(np.concatenate([p.hu for p in parts]), np.concatenate([p.region for p in parts]),
                       np.concatenate([p.lesion for p in parts]),
                       pd.concat([p.rows for p in parts], ignore_index=True),
                       [note for p in parts for note in p.rejected])
