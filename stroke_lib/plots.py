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


def roc_curves(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], title: str,
               operating_points: dict[str, tuple[float, float]] | None = None,
               n_boot: int = 200, seed: int = 0) -> plt.Figure:
    """ROC curves of several models on one axis with 95% bootstrap bands.

    Args:
        curves: label -> (y, score, groups); the band resamples patients (groups).
        operating_points: label -> (sensitivity, specificity), drawn as markers
            (e.g. published clinicians' or models' points).
    """
    from sklearn.metrics import roc_curve

    grid = np.linspace(0, 1, 101)
    fig, ax = plt.subplots(figsize=(5, 5))
    rng = np.random.default_rng(seed)
    for label, (y, score, groups) in curves.items():
        y, score, groups = np.asarray(y), np.asarray(score), np.asarray(groups)
        fpr, tpr, _ = roc_curve(y, score)
        line, = ax.plot(fpr, tpr, label=label)
        patients = np.unique(groups)
        tprs = []
        for _ in range(n_boot):
            drawn = rng.choice(patients, len(patients), replace=True)
            idx = np.concatenate([np.flatnonzero(groups == p) for p in drawn])
            if len(np.unique(y[idx])) < 2:
                continue
            f, t, _ = roc_curve(y[idx], score[idx])
            tprs.append(np.interp(grid, f, t))
        lo, hi = np.quantile(tprs, [0.025, 0.975], axis=0)
        ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.15)
    for label, (sens, spec) in (operating_points or {}).items():
        ax.plot(1 - spec, sens, marker="*", ms=11, ls="none", label=label)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def confusion_matrices(items: dict[str, tuple[np.ndarray, np.ndarray]], labels: Sequence[str],
                       title: str) -> plt.Figure:
    """Confusion matrices side by side: name -> (y, predicted class)."""
    from sklearn.metrics import confusion_matrix

    fig, axes = plt.subplots(1, len(items), figsize=(3.4 * len(items), 3.2), squeeze=False)
    for ax, (name, (y, pred)) in zip(axes[0], items.items()):
        cm = confusion_matrix(y, pred, labels=[0, 1])
        sns.heatmap(cm, annot=True, fmt="d", cbar=False, cmap="Blues", ax=ax,
                    xticklabels=labels, yticklabels=labels)
        ax.set(xlabel="predicted", ylabel="true", title=name)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(histories: dict[str, pd.DataFrame], title: str) -> plt.Figure:
    """Train and validation loss per epoch for several runs: name -> history table."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, h in histories.items():
        line, = ax.plot(h.epoch, h.train_loss, label=f"{name} train")
        ax.plot(h.epoch, h.val_loss, ls="--", color=line.get_color(), label=f"{name} validation")
    ax.set(xlabel="epoch", ylabel="loss (BCE)", title=title)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def reliability(items: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> plt.Figure:
    """Reliability curves: name -> (mean predicted, observed rate) per bin."""
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    for name, (pred, obs) in items.items():
        ax.plot(pred, obs, marker="o", label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def gradcam_overlays(rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], title: str,
                     n_slices: int = 4) -> plt.Figure:
    """Grad-CAM over several axial slices with the lesion outline.

    Args:
        rows: (label, image (X, Y, Z), cam (X, Y, Z) in [0, 1], lesion mask (X, Y, Z)).
    """
    fig, axes = plt.subplots(len(rows), n_slices, figsize=(2.2 * n_slices, 2.3 * len(rows)),
                             squeeze=False)
    for r, (label, image, cam, mask) in enumerate(rows):
        centre = lesion_slice(mask)
        ks = np.clip(centre + np.arange(n_slices) - n_slices // 2, 0, image.shape[2] - 1)
        for c, k in enumerate(ks):
            ax = axes[r, c]
            ax.imshow(axial(image, k), cmap="gray")
            ax.imshow(axial(cam, k), cmap="jet", alpha=0.35, vmin=0, vmax=1)
            if mask[:, :, k].any():
                ax.contour(axial(mask > 0.5, k), levels=[0.5], colors="white", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"slice {k}", fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.suptitle(f"{title}\n({RADIOLOGICAL}; white: lesion)", fontsize=9)
    fig.tight_layout()
    return fig
