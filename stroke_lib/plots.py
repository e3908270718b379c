"""Figures of the book (matplotlib/seaborn), one function per kind of figure.

Axial slices are drawn in radiological convention (the patient's right on the image's
left), as stated on each figure. Volumes are (X, Y, Z) RAS+ as the loaders return them.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from stroke_lib.preprocess import window

RADIOLOGICAL = "radiological convention: patient's right on the left"


def axial(volume: np.ndarray, k: int) -> np.ndarray:
    """Slice ``k`` of an (X, Y, Z) RAS volume as a 2D image (rows anterior at top,
    patient's right on the left), ready for ``imshow`` with the default origin."""
    return volume[::-1, ::-1, k].T


def lesion_slice(mask: np.ndarray) -> int:
    """The axial slice with the most mask voxels (the middle slice if the mask is empty)."""
    counts = (mask > 0).sum(axis=(0, 1))
    return int(np.argmax(counts)) if counts.any() else mask.shape[2] // 2


def ct_windows(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray]],
    windows: Sequence[tuple[float, float]],
    title: str,
) -> plt.Figure:
    """A grid of CT slices: one row per (label, HU volume, lesion mask), one column per
    (centre, width) window; lesion outlined in red on the slice with most lesion."""
    fig, axes = plt.subplots(len(rows), len(windows), figsize=(2.6 * len(windows), 2.6 * len(rows)),
                             squeeze=False)
    for r, (label, hu, mask) in enumerate(rows):
        k = lesion_slice(mask)
        for c, (wc, ww) in enumerate(windows):
            ax = axes[r, c]
            ax.imshow(window(axial(hu, k), wc, ww), cmap="gray", vmin=0, vmax=1)
            if mask[:, :, k].any():
                ax.contour(axial(mask > 0, k), levels=[0.5], colors="red", linewidths=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"WC{wc:g}/WW{ww:g}")
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"{title}\n({RADIOLOGICAL})", fontsize=10)
    fig.tight_layout()
    return fig


def dwi_adc(rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], title: str) -> plt.Figure:
    """DWI b1000 and ADC side by side with the lesion outline: rows of (label, dwi, adc, mask)."""
    fig, axes = plt.subplots(len(rows), 2, figsize=(5.2, 2.6 * len(rows)), squeeze=False)
    for r, (label, dwi, adc, mask) in enumerate(rows):
        k = lesion_slice(mask)
        for c, (img, name, vmax) in enumerate(
            ((dwi, "DWI b1000", np.percentile(dwi, 99.5)), (adc, "ADC (1e-6 mm²/s)", 3000))
        ):
            ax = axes[r, c]
            ax.imshow(axial(img, k), cmap="gray", vmin=0, vmax=vmax)
            if mask[:, :, k].any():
                ax.contour(axial(mask > 0, k), levels=[0.5], colors="yellow", linewidths=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"{title}\n({RADIOLOGICAL})", fontsize=10)
    fig.tight_layout()
    return fig


def label_distributions(labels: pd.DataFrame, title: str) -> plt.Figure:
    """Four panels per site: stroke type, NIHSS, severity and HT (ischaemic subjects)."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    sns.countplot(data=labels, x="stroke_type", hue="site", ax=axes[0])
    sns.histplot(data=labels, x="nihss", hue="site", discrete=True, multiple="dodge", ax=axes[1])
    stroke = labels[labels.stroke_type != "none"]
    sns.countplot(data=stroke, x="severity", hue="site", ax=axes[2])
    isch = labels[labels.stroke_type == "ischaemic"].assign(
        ht=lambda d: d.ht.map({0.0: "no HT", 1.0: "HT"}))
    sns.countplot(data=isch, x="ht", hue="site", ax=axes[3])
    for ax, t in zip(axes, ("stroke type", "NIHSS", "severity (stroke subjects)", "HT (ischaemic)")):
        ax.set_title(t)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def paired_differences(table: pd.DataFrame, x: str, y: str, title: str, xlabel: str,
                       ylabel: str) -> plt.Figure:
    """Scatter of per-subject values ``y`` against ``x`` with the identity line."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    sns.scatterplot(data=table, x=x, y=y, hue="site" if "site" in table else None, ax=ax)
    lo = float(min(table[x].min(), table[y].min()))
    hi = float(max(table[x].max(), table[y].max()))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.tight_layout()
    return fig
