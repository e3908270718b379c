"""Region inputs of chapter 05 (Jung and Whangbo, paper 004): one 2D crop per brain region.

Each ASPECTS-like region of each hemisphere (the embedded cohort's region map, labels
1..20 named ``region_names()``) gives one sample: on the axial slice where the region is
largest (its target slice), a square box around the region (its bounding box widened by
``margin`` on each side), cut from that slice and its ``half`` neighbours on either side
(edge slices repeated: ``preprocess.lesion_concat``) and resized to ``size`` x ``size``.
The crops are kept in HU, so that every window and every lesion-concatenation depth is
a view of the same array (``RegionCrops.inputs``).

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
from stroke_lib.preprocess import lesion_concat, window

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
        rows: one row per crop: ``patient_id``, ``scan_id``, ``site``, ``region`` (e.g.
            ``"L_M2"``), ``side`` ("L"/"R"), ``slice`` (target slice index), ``box``
            (x0, x1, y0, y1 in voxels), ``state`` (``REGION_STATES`` or "" where the data
            has none), ``acute_share``, ``old_share``, ``haemorrhage_share`` (of the
            region's voxels) and ``haemorrhage`` (a bleed inside the box on the target slice).
        rejected: one sentence per scan left out, naming the file and the problem.
    """

    hu: np.ndarray
    region: np.ndarray
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
        return RegionCrops(self.hu[index], self.region[index], self.rows.iloc[index].reset_index(drop=True),
                           self.rejected)


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
               half: int = 2, margin: float = 0.15) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Region crops of one scan.

    Args:
        hu: CT (X, Y, Z) in HU. regions: int (X, Y, Z), 0 outside every region, i for
            ``names[i - 1]``. lesion: int (X, Y, Z) lesion labels (``ACUTE``, ``OLD``,
            ``HAEMORRHAGE``; 0 elsewhere), on the same grid.
    Returns:
        crops (R, 2 * half + 1, size, size) HU, region masks (R, size, size) and one dict
        per crop (``region``, ``side``, ``slice``, ``box``, lesion shares,
        ``haemorrhage``), for every region present in the map.
    """
    if not hu.shape == regions.shape == lesion.shape:
        raise ValueError(f"CT {hu.shape}, region map {regions.shape} and lesion mask {lesion.shape} differ in shape")
    concat = lesion_concat(hu, 2 * half + 1)  # (Z, 2 half + 1, X, Y), edge slices repeated
    resize, resize_nn = Resize((size, size), mode="bilinear"), Resize((size, size), mode="nearest")
    crops, masks, info = [], [], []
    for i, name in enumerate(names, start=1):
        reg = regions == i
        n = int(reg.sum())
        if n == 0:
            continue
        z = int(np.argmax(reg.sum(axis=(0, 1))))
        box = _square_box(reg[:, :, z], margin)
        crops.append(np.asarray(resize(_cut(concat[z], box, AIR_HU)), np.float32))
        masks.append(np.asarray(resize_nn(_cut(reg[None, :, :, z].astype(np.float32), box, 0.0)))[0] > 0.5)
        bleed = _cut((lesion[None, :, :, z] == HAEMORRHAGE).astype(np.float32), box, 0.0)
        info.append({"region": name, "side": name.split("_")[0], "slice": z, "box": box,
                     "acute_share": float((reg & (lesion == ACUTE)).sum() / n),
                     "old_share": float((reg & (lesion == OLD)).sum() / n),
                     "haemorrhage_share": float((reg & (lesion == HAEMORRHAGE)).sum() / n),
                     "haemorrhage": bool(bleed.any())})
    return np.stack(crops), np.stack(masks), info


def region_crops(rows: pd.DataFrame, size: int = 32, half: int = 2, margin: float = 0.15,
                 reader: Callable[[pd.Series], Volume] | None = None) -> RegionCrops:
    """Region crops of every CT row (``image`` a series folder, ``regions`` the region map,
    ``mask`` the lesion labels, on the CT's grid; ``region_<name>`` columns give the states).

    A scan whose CT, region map or mask cannot be read, or whose grids differ, is left out
    and named in ``rejected`` (the scan, the file's name without its folders, the
    problem); the others go on. Raises ``DataError`` when no scan could be used.
    """
    read = reader or (lambda r: read_ct_series(r.image))
    names = region_names()
    hus, masks, records, rejected = [], [], [], []
    for _, r in tqdm(rows.iterrows(), total=len(rows), desc="cutting region crops", leave=False):
        try:
            hu = read(r).data
            regions = np.rint(read_nifti(r["regions"]).data).astype(int)
            lesion = np.rint(read_nifti(r["mask"]).data).astype(int)
            crops, region, info = scan_crops(hu, regions, lesion, names, size, half, margin)
        except DataError as err:
            rejected.append(f"{r.scan_id} left out: {Path(err.path).name}: {err.problem}")
            continue
        except ValueError as err:
            rejected.append(f"{r.scan_id} left out: {Path(str(r['regions'])).name}: {err}")
            continue
        hus.append(crops)
        masks.append(region)
        for d in info:
            records.append({"patient_id": r.patient_id, "scan_id": r.scan_id, "site": r.site,
                            "state": r.get(f"region_{d['region']}", ""), **d})
    if not hus:
        raise DataError(Path(str(rows.image.iloc[0])).parent if len(rows) else Path("."),
                        "no scan gave region crops: " + "; ".join(rejected[:3]))
    return RegionCrops(np.concatenate(hus), np.concatenate(masks), pd.DataFrame(records), rejected)
