"""Model inputs built from a ``Cohort``: volumes read once, preprocessed, kept in memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from monai.transforms import Resize
from tqdm import tqdm

from stroke_lib.data import read_nifti
from stroke_lib.preprocess import normalize_mri


@dataclass
class ArrayDataset:
    """Inputs and labels of one task.

    Attributes:
        x: float32 tensor (N, C, X, Y, Z).
        y: int labels (N,).
        rows: the cohort rows, in the same order (patient_id, scan_id, site, ...).
        masks: float32 (N, X, Y, Z) lesion masks resized like ``x`` (zeros where none).
        brains: bool (N, X, Y, Z) brain masks resized like ``x``.
    """

    x: torch.Tensor
    y: np.ndarray
    rows: pd.DataFrame
    masks: np.ndarray
    brains: np.ndarray

    def subset(self, index: np.ndarray) -> "ArrayDataset":
        return ArrayDataset(self.x[index], self.y[index], self.rows.iloc[index].reset_index(drop=True),
                            self.masks[index], self.brains[index])


def dwi_dataset(rows: pd.DataFrame, label: Sequence[int], shape: Sequence[int]) -> ArrayDataset:
    """DWI b1000 and ADC as two channels, z-scored within the brain, resized to ``shape``.

    Args:
        rows: cohort rows with ``image`` (DWI trace), ``adc`` and optionally ``mask``.
        label: 0/1 per row.
        shape: spatial size (X, Y, Z) of the model input.
    """
    resize = Resize(spatial_size=tuple(shape), mode="trilinear")
    resize_nn = Resize(spatial_size=tuple(shape), mode="nearest")
    xs, masks, brains = [], [], []
    for _, r in tqdm(rows.iterrows(), total=len(rows), desc="preparing DWI inputs", leave=False):
        dwi, adc = read_nifti(r.image).data, read_nifti(r.adc).data
        brain = adc > 0
        vol = np.stack([normalize_mri(dwi, brain), normalize_mri(adc, brain)])
        xs.append(np.asarray(resize(vol), np.float32))
        mask = read_nifti(r["mask"]).data == 1 if isinstance(r.get("mask"), str) else np.zeros_like(dwi)
        masks.append(np.asarray(resize_nn(mask[None].astype(np.float32)))[0])
        brains.append(np.asarray(resize_nn(brain[None].astype(np.float32)))[0] > 0)
    return ArrayDataset(torch.from_numpy(np.stack(xs)), np.asarray(label, int),
                        rows.reset_index(drop=True), np.stack(masks), np.stack(brains))
