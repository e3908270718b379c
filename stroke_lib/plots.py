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
from matplotlib.lines import Line2D
from matplotlib.patches import Patch


RADIOLOGICAL = "radiological convention: patient's right on the left"

#: Outline colour and name of each lesion label of the cohort's masks (1 acute infarct,
#: 2 old infarct, 3 haemorrhage), from the Okabe-Ito colour-blind-safe palette.
LESION_STYLES: dict[int, tuple[str, str]] = {
    1: ("acute infarct", "#F0E442"),
    2: ("old infarct", "#56B4E9"),
    3: ("haemorrhage", "#D55E00"),
}


def axial(volume: np.ndarray, k: int) -> np.ndarray:
    """Slice ``k`` of an (X, Y, Z) RAS volume as a 2D image (rows anterior at top,
    patient's right on the left), ready for ``imshow`` with the default origin."""
    return volume[::-1, ::-1, k].T


def lesion_slice(mask: np.ndarray) -> int:
    """The axial slice with the most mask voxels (the middle slice if the mask is empty)."""
    counts = (mask > 0).sum(axis=(0, 1))
    return int(np.argmax(counts)) if counts.any() else mask.shape[2] // 2


def mri_display_range(volume: np.ndarray, brain: np.ndarray, high: float) -> tuple[float, float]:
    """Display range (0, ``high`` x the brain's median) of an MRI volume.

    Taken from brain-tissue statistics rather than the volume's own extremes, so that a
    lesion 1.5 times as bright as normal tissue or more (an acute infarct on DWI b1000)
    stays brighter than normal brain instead of being clipped to the same white, and CSF
    does not set the scale of ADC.
    """
    tissue = volume[brain & np.isfinite(volume)]
    return 0.0, float(high * np.median(tissue)) if tissue.size else float(np.nanmax(volume))


def _mark_sides(ax: plt.Axes) -> None:
    """Write R and L at the image's left and right edges (radiological convention)."""
    for x, text in ((0.03, "R"), (0.97, "L")):
        ax.text(x, 0.5, text, transform=ax.transAxes, color="white", fontsize=7,
                ha="center", va="center", fontweight="bold")


def _label_panel(ax: plt.Axes, r: int, c: int, title: str, label: str) -> None:
    """Mark R and L, drop the ticks, title a first-row panel and name the row on the first column."""
    _mark_sides(ax)
    ax.set_xticks([])
    ax.set_yticks([])
    if r == 0:
        ax.set_title(title, fontsize=9)
    if c == 0:
        ax.set_ylabel(label, fontsize=8)


def _outline_lesions(ax: plt.Axes, labels: np.ndarray, k: int) -> set[int]:
    """Outline each lesion label on slice ``k`` in its own colour; returns the labels drawn."""
    drawn = set()
    for value, (_, colour) in LESION_STYLES.items():
        region = labels[:, :, k] == value
        if region.any():
            ax.contour(axial(labels == value, k), levels=[0.5], colors=colour, linewidths=0.9)
            drawn.add(value)
    return drawn


def _lesion_legend(fig: plt.Figure, drawn: set[int]) -> None:
    if drawn:
        handles = [Line2D([], [], color=LESION_STYLES[v][1], lw=1.5, label=LESION_STYLES[v][0])
                   for v in sorted(drawn)]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
                   frameon=False, bbox_to_anchor=(0.5, 0.0))


def ct_windows(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray]],
    windows: Sequence[tuple[float, float]],
    title: str,
) -> plt.Figure:
    """A grid of CT slices: one row per (label, HU volume, lesion labels), one column per
    (centre, width) window, each lesion label outlined in its colour (``LESION_STYLES``)
    on the slice with most lesion; one HU colour bar per window (``ct_slices``)."""
    picked = []
    for label, hu, mask in rows:
        k = lesion_slice(mask)
        picked.append((label, hu[:, :, k], mask[:, :, k]))
    return ct_slices(picked, windows, title)


def ct_slices(rows: Sequence[tuple[str, np.ndarray, np.ndarray | None]], windows: Sequence[tuple[float, float]],
              title: str) -> plt.Figure:
    """Chosen axial CT slices in several windows: rows of (label, HU slice (X, Y) in RAS,
    its lesion labels or None), one column per (centre, width) window, lesions outlined
    in their colours (``LESION_STYLES``), one HU colour bar per window."""
    fig, axes = plt.subplots(len(rows), len(windows), figsize=(2.7 * len(windows), 2.6 * len(rows) + 0.9),
                             squeeze=False)
    drawn: set[int] = set()
    for r, (label, hu, mask) in enumerate(rows):
        for c, (wc, ww) in enumerate(windows):
            ax = axes[r, c]
            im = ax.imshow(axial(hu[:, :, None], 0), cmap="gray", vmin=wc - ww / 2, vmax=wc + ww / 2)
            if mask is not None:
                drawn |= _outline_lesions(ax, mask[:, :, None], 0)
            _label_panel(ax, r, c, f"WC{wc:g}/WW{ww:g}", label)
            if r == len(rows) - 1:
                fig.colorbar(im, ax=axes[:, c], orientation="horizontal", fraction=0.03, pad=0.02,
                             label="HU")
    fig.suptitle(f"{title}\n({RADIOLOGICAL})", fontsize=10)
    _lesion_legend(fig, drawn)
    return fig


def dwi_adc(rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, Sequence[int]]],
            title: str) -> plt.Figure:
    """DWI b1000 and ADC side by side with lesion outlines: rows of (label, dwi, adc,
    lesion labels, focus), volumes (X, Y, Z) on one grid; each row shows the axial slice
    with most voxels of the ``focus`` labels (e.g. ``(1, 3)`` acute lesions, ``(2,)`` an
    old infarct), the middle slice when there are none.

    Display ranges come from the brain (ADC > 0): DWI from 0 to 2x the brain's median
    (normal tissue mid-grey, an acute infarct at 1.5x or more well above it), ADC from 0
    to 2.5x its median (an acute infarct dark, CSF white). Each row has its own colour bars, in the image's
    units (DWI arbitrary, ADC 1e-6 mm^2/s).
    """
    fig, axes = plt.subplots(len(rows), 2, figsize=(6.4, 2.7 * len(rows) + 0.6), squeeze=False)
    drawn: set[int] = set()
    for r, (label, dwi, adc, mask, focus) in enumerate(rows):
        k = lesion_slice(np.isin(mask, focus))
        brain = adc > 0
        for c, (img, name, high) in enumerate(((dwi, "DWI b1000 (a.u.)", 2.0),
                                               (adc, "ADC (1e-6 mm²/s)", 2.5))):
            ax = axes[r, c]
            lo, hi = mri_display_range(img, brain, high)
            im = ax.imshow(axial(img, k), cmap="gray", vmin=lo, vmax=hi)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            drawn |= _outline_lesions(ax, mask, k)
            _label_panel(ax, r, c, name, label)
    fig.suptitle(f"{title}\n({RADIOLOGICAL})", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _lesion_legend(fig, drawn)
    return fig


def label_distributions(labels: pd.DataFrame, title: str) -> plt.Figure:
    """One panel per label the table has, counted per site: stroke type, NIHSS, severity
    (stroke subjects) and HT (ischaemic subjects). A real dataset shows what it has (SOOP:
    NIHSS only)."""
    panels = [name for name, cols in (("stroke type", ["stroke_type"]), ("NIHSS", ["nihss"]),
                                      ("severity", ["severity", "stroke_type"]),
                                      ("HT", ["ht", "stroke_type"]))
              if all(c in labels for c in cols)]
    if not panels:
        raise ValueError(f"no label column to draw; columns: {list(labels.columns)}")
    hue = "site" if labels.site.nunique() > 1 else None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.4), squeeze=False)
    for ax, name in zip(axes[0], panels):
        if name == "stroke type":
            sns.countplot(data=labels, x="stroke_type", hue=hue, ax=ax)
            ax.set_title("stroke type")
        elif name == "NIHSS":
            sns.histplot(data=labels, x="nihss", hue=hue, discrete=True, multiple="dodge", ax=ax)
            ax.set_title("NIHSS")
        elif name == "severity":
            sns.countplot(data=labels[labels.stroke_type != "none"], x="severity", hue=hue, ax=ax)
            ax.set_title("severity (stroke subjects)")
        else:
            isch = labels[labels.stroke_type == "ischaemic"].assign(
                ht=lambda d: d.ht.map({0.0: "no HT", 1.0: "HT"}))
            sns.countplot(data=isch, x="ht", hue=hue, ax=ax)
            ax.set_title("HT (ischaemic subjects)")
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


#: Colour of the CT's brain outline drawn on the DWI (Okabe-Ito reddish purple).
CT_OUTLINE = "#CC79A7"


def two_acquisitions(rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                     title: str) -> plt.Figure:
    """A subject's CT and DWI, two acquisitions, on the DWI's grid: rows of (label, CT HU
    carried onto the DWI grid, b0, b1000 trace, ADC, the CT's brain mask carried the same
    way), each an axial 2D slice (X, Y) in RAS. Columns: CT (brain window WC40/WW80), b0,
    trace, ADC (display ranges from the brain, ADC > 0, as ``dwi_adc``); the CT's brain
    outline is drawn on the three DWI images, so a misfit shows where they differ."""
    fig, axes = plt.subplots(len(rows), 4, figsize=(10.0, 2.6 * len(rows) + 0.7), squeeze=False)
    for r, (label, hu, b0, trace, adc, ct_brain) in enumerate(rows):
        brain = adc > 0
        panels = ((hu, "CT, registered (HU)", (0.0, 80.0)),
                  (b0, "DWI b0 (a.u.)", mri_display_range(b0, brain, 2.5)),
                  (trace, "DWI b1000 trace (a.u.)", mri_display_range(trace, brain, 2.0)),
                  (adc, "ADC (1e-6 mm²/s)", mri_display_range(adc, brain, 2.5)))
        for c, (img, name, (lo, hi)) in enumerate(panels):
            ax = axes[r, c]
            im = ax.imshow(img[::-1, ::-1].T, cmap="gray", vmin=lo, vmax=hi)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            if c and ct_brain.any():
                ax.contour(ct_brain[::-1, ::-1].T > 0.5, levels=[0.5], colors=CT_OUTLINE, linewidths=0.9)
            _label_panel(ax, r, c, name, label)
    fig.suptitle(f"{title}\n({RADIOLOGICAL})", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.legend(handles=[Line2D([], [], color=CT_OUTLINE, lw=1.5, label="the CT's brain, registered onto the DWI")],
               loc="lower center", fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    return fig


def mass_effect(measured: pd.DataFrame, per_ml: tuple[float, float], title: str) -> plt.Figure:
    """Ventricle shift away from the lesion (mm) against the acute lesion's volume in its
    mask (ml), one point per stroke subject of ``measured`` (``measure_subjects``: columns
    ``stroke_type``, ``acute_lesion_ml``, ``ventricle_shift_mm``) coloured by stroke type,
    over the band of ``per_ml`` (mm per ml from the origin: the shift reported for
    haematomas), drawn up to the largest haematoma."""
    stroke = measured[measured.stroke_type != "none"].dropna(subset=["ventricle_shift_mm"])
    haem = stroke[stroke.stroke_type == "haemorrhagic"]
    fig, ax = plt.subplots(figsize=(5.4, 4.2))
    xs = np.array([0.0, float((haem if len(haem) else stroke).acute_lesion_ml.max())])
    ax.fill_between(xs, per_ml[0] * xs, per_ml[1] * xs, color="grey", alpha=0.25, lw=0,
                    label=f"haematoma in patients: {per_ml[0]:g}-{per_ml[1]:g} mm per ml")
    ax.axhline(0, color="grey", lw=0.6)
    sns.scatterplot(data=stroke, x="acute_lesion_ml", y="ventricle_shift_mm", hue="stroke_type",
                    hue_order=sorted(stroke.stroke_type.unique()), ax=ax, s=18)
    ax.set(xlabel="acute lesion volume in its mask (ml)", ylabel="ventricle shift away from the lesion (mm)",
           title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def roc_curves(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], title: str,
               operating_points: dict[str, tuple[float, float]] | None = None,
               n_boot: int = 200, seed: int = 0, point_group: str | None = None) -> plt.Figure:
    """ROC curves of several models on one axis with 95% patient-bootstrap bands.

    Args:
        curves: label -> (y, score, groups); the band is the pointwise 2.5-97.5 percentile
            of sensitivity over ``n_boot`` replicates that resample patients (groups).
        operating_points: label -> (sensitivity, specificity) of the positive class, drawn
            as markers. Only a true pair belongs here: a class-weighted recall is not a
            sensitivity, so a paper point reported that way must not be drawn.
        point_group: draw every operating point in one style under this one legend entry,
            each labelled on the axes by its key (for many readers' points).
    """
    from sklearn.metrics import roc_curve

    grid = np.linspace(0, 1, 101)
    fig, ax = plt.subplots(figsize=(5.4, 5.2))
    rng = np.random.default_rng(seed)
    for label, (y, score, groups) in curves.items():
        y, score, groups = np.asarray(y), np.asarray(score), np.asarray(groups)
        fpr, tpr, _ = roc_curve(y, score)
        line, = ax.plot(fpr, tpr, label=label)
        patients, inverse = np.unique(groups, return_inverse=True)
        rows_of = [np.flatnonzero(inverse == i) for i in range(len(patients))]
        tprs = []
        for _ in range(n_boot):
            idx = np.concatenate([rows_of[p] for p in rng.integers(0, len(patients), len(patients))])
            if len(np.unique(y[idx])) < 2:
                continue
            f, t, _ = roc_curve(y[idx], score[idx])
            tprs.append(np.interp(grid, f, t))
        lo, hi = np.quantile(tprs, [0.025, 0.975], axis=0)
        ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    band = Patch(color="grey", alpha=0.3, label=f"95% band: patient bootstrap, {n_boot} replicates")
    for k, (label, (sens, spec)) in enumerate((operating_points or {}).items()):
        if point_group is None:
            ax.plot(1 - spec, sens, marker="*", ms=11, ls="none", label=label)
            continue
        ax.plot(1 - spec, sens, marker="o", ms=6, ls="none", color="black", mfc="white",
                label=point_group if k == 0 else None)
        ax.annotate(label, (1 - spec, sens), xytext=(4, 3), textcoords="offset points", fontsize=7)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1))
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + [band], fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def confusion_matrices(items: dict[str, tuple[np.ndarray, np.ndarray]], labels: Sequence[str],
                       title: str) -> plt.Figure:
    """Confusion matrices side by side: name -> (y, predicted class), classes 0..K-1 named by ``labels``."""
    from sklearn.metrics import confusion_matrix

    fig, axes = plt.subplots(1, len(items), figsize=(3.4 * len(items), 3.2), squeeze=False)
    for ax, (name, (y, pred)) in zip(axes[0], items.items()):
        cm = confusion_matrix(y, pred, labels=list(range(len(labels))))
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
    """Saliency maps over several axial slices around the lesion, with its outline.

    Args:
        rows: (label, image (X, Y, Z), map (X, Y, Z) in [0, 1], lesion mask (X, Y, Z)).
    """
    fig, axes = plt.subplots(len(rows), n_slices, figsize=(2.2 * n_slices + 0.8, 2.3 * len(rows) + 0.5),
                             squeeze=False)
    for r, (label, image, cam, mask) in enumerate(rows):
        centre = lesion_slice(mask)
        ks = np.clip(centre + np.arange(n_slices) - n_slices // 2, 0, image.shape[2] - 1)
        for c, k in enumerate(ks):
            ax = axes[r, c]
            ax.imshow(axial(image, k), cmap="gray")
            im = ax.imshow(axial(cam, k), cmap="jet", alpha=0.35, vmin=0, vmax=1)
            if mask[:, :, k].any():
                ax.contour(axial(mask > 0.5, k), levels=[0.5], colors="white", linewidths=0.8)
            _mark_sides(ax)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"slice {k}", fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
    fig.suptitle(f"{title}\n({RADIOLOGICAL}; white outline: acute lesion)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    cax = fig.add_axes((0.93, 0.15, 0.015, 0.7))
    fig.colorbar(im, cax=cax, label="map (0 to 1, per patient)")
    return fig


def _box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str, colour: str,
         fontsize: float = 7) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=colour, ec="black", lw=0.8))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "lw": 0.9})


def tractnet_architecture(model, input_shape: Sequence[int], title: str) -> plt.Figure:
    """Block diagram of a ``stroke_lib.models.TractNet``: the path from input to logit with
    each stage's channels and map size (read from one forward pass of a zero input of
    ``input_shape`` (C, X, Y, Z)), and below it the mixture-residual block with its skip
    mixture (identity, 3D coordinate attention, 3D efficient self-attention)."""
    import torch

    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
             for name, module in [("stem", model.stem), *((f"stage {i + 1}", s) for i, s in enumerate(model.stages)),
                                  ("bottleneck", model.bottleneck)]]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros((1, *input_shape)))
    model.train(was_training)
    for h in hooks:
        h.remove()
    size = lambda s: "x".join(str(v) for v in s[1:])  # noqa: E731
    names = {"identity": "identity", "coord_attention": "3D coordinate attention",
             "efficient_attention": "3D efficient self-attention"}
    mixture = getattr(model.stages[0][-1].skip, "components", {"identity": None})
    components = [names[c] for c in mixture]
    bottleneck = (f"Mamba bottleneck\n{model.bottleneck.scan} scan\nsequence of {int(np.prod(shapes['bottleneck'][1:]))} voxels"
                  if hasattr(model.bottleneck, "scan") else "no Mamba\n(identity)")
    blocks = [("input\nDWI", f"{input_shape[0]} x {size(input_shape)}", "#FFFFFF"),
              ("stem\nconv 3³, stride 2", f"{shapes['stem'][0]} x {size(shapes['stem'])}", "#E0E0E0")]
    for i in range(len(model.stages)):
        n = sum(1 for m in model.stages[i] if m.__class__.__name__ == "MixtureResidualBlock")
        down = "" if i == 0 else "down 2, "
        blocks.append((f"stage {i + 1}\n{down}{n} mixture-\nresidual block{'s' if n > 1 else ''}",
                       f"{shapes[f'stage {i + 1}'][0]} x {size(shapes[f'stage {i + 1}'])}", "#9ECAE1"))
    blocks += [(bottleneck, f"{shapes['bottleneck'][0]} x {size(shapes['bottleneck'])}", "#FDD0A2"),
               ("global average\npool + linear", "1 logit", "#E0E0E0")]
    fig, ax = plt.subplots(figsize=(11, 5.2))
    w, h, gap = 1.18, 1.0, 0.32
    for i, (text, shape, colour) in enumerate(blocks):
        x = i * (w + gap)
        _box(ax, x, 3.2, w, h, text, colour, fontsize=6.5)
        ax.text(x + w / 2, 3.0, shape, ha="center", va="top", fontsize=6.5, color="#404040")
        if i:
            _arrow(ax, (x - gap, 3.7), (x, 3.7))
    # the mixture-residual block, drawn below
    _box(ax, 0.3, 0.9, 1.2, 0.7, "x", "#FFFFFF")
    _box(ax, 2.4, 1.75, 2.6, 0.65, "F(x): conv 3³-BN-ReLU-conv 3³-BN", "#9ECAE1", fontsize=6.5)
    ys = np.linspace(1.15, -0.15, len(components))
    for comp, y in zip(components, ys):
        _box(ax, 2.4, y - 0.25, 2.6, 0.5, comp, "#C7E9C0" if comp != "identity" else "#FFFFFF", fontsize=6.5)
        _arrow(ax, (1.5, 1.25), (2.4, y))
        _arrow(ax, (5.0, y), (6.1, 0.75))
    _box(ax, 6.1, 0.4, 2.0, 0.7, "S(x) = Σ softmax(α)ᵢ Sᵢ(x)\n(learned mixture)", "#C7E9C0", fontsize=6.5)
    _box(ax, 9.0, 0.9, 1.9, 0.7, "ReLU(F(x) + S(x))", "#9ECAE1", fontsize=6.5)
    _arrow(ax, (1.5, 1.25), (2.4, 2.07))
    _arrow(ax, (5.0, 2.07), (9.0, 1.4))
    _arrow(ax, (8.1, 0.75), (9.0, 1.1))
    ax.text(0, 4.45, "below each box: channels x map size", fontsize=7, color="#404040")
    ax.text(0.3, 2.6, "mixture-residual block (every block of every stage)", fontsize=8, weight="bold")
    ax.set(xlim=(-0.2, len(blocks) * (w + gap)), ylim=(-0.6, 4.6), title=title)
    ax.axis("off")
    fig.tight_layout()
    return fig


def lesion_volumes(measured_ml: np.ndarray, nihss: np.ndarray, cutoff: int, sites: np.ndarray, title: str,
                   true_ml: np.ndarray | None = None) -> plt.Figure:
    """Measured acute lesion volume (ml) against NIHSS, with the minor/non-minor cut-off;
    beside it, when ``true_ml`` is given (the embedded cohort), measured against true volume
    with the identity line. Volumes on a symmetric-log axis (linear below 1 ml), one point
    per patient coloured by site."""
    panels = 1 if true_ml is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.9 * panels, 4.2), squeeze=False)
    ax = axes[0, 0]
    sns.scatterplot(x=measured_ml, y=nihss, hue=sites, ax=ax, s=18)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.axhline(cutoff + 0.5, color="grey", ls="--", lw=0.8)
    ax.text(0, cutoff + 0.7, f" non-minor: NIHSS > {cutoff}", fontsize=7, color="grey", va="bottom")
    ax.set(xlabel="measured acute lesion volume (ml)", ylabel="NIHSS", title="NIHSS against measured volume")
    ax.legend(title="site", fontsize=7)
    if true_ml is not None:
        ax = axes[0, 1]
        sns.scatterplot(x=true_ml, y=measured_ml, hue=sites, ax=ax, s=18, legend=False)
        hi = float(max(np.max(true_ml), np.max(measured_ml)))
        ax.plot([0, hi], [0, hi], color="grey", lw=0.8, ls="--")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set(xlim=(0, None), ylim=(0, None))
        ax.set(xlabel="true acute lesion volume (ml, template space)", ylabel="measured (ml, thresholds)",
               title="Measured against true volume")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def region_crops(rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
                 windows: Sequence[tuple[float, float]], title: str) -> plt.Figure:
    """Region crops as the region classifiers read them: one row per crop, one column per
    slice of the lesion concatenation in each window; on the target slice the region is
    outlined in orange and the lesions in their ``LESION_STYLES`` colours.

    Args:
        rows: (label, crop (S, H, W) in HU, slice S // 2 the target; region mask (H, W);
            lesion labels on the target slice (H, W)).
        windows: (centre, width) in HU.
    """
    n_slices = rows[0][1].shape[0]
    fig, axes = plt.subplots(len(rows) * len(windows), n_slices, squeeze=False,
                             figsize=(1.5 * n_slices + 0.6, 1.6 * len(rows) * len(windows) + 0.6))
    drawn: set[int] = set()
    for i, (label, crop, region, lesion) in enumerate(rows):
        for j, (centre, width) in enumerate(windows):
            line = axes[i * len(windows) + j]
            volume = np.moveaxis(crop, 0, -1)  # (X, Y, S)
            for s, ax in enumerate(line):
                ax.imshow(axial(volume, s), cmap="gray", vmin=centre - width / 2, vmax=centre + width / 2)
                if s == n_slices // 2:
                    ax.contour(axial(region[:, :, None].astype(float), 0), levels=[0.5], colors=["#E69F00"],
                               linewidths=0.8)
                    for value, (_, colour) in LESION_STYLES.items():
                        if (lesion == value).any():
                            ax.contour(axial((lesion == value)[:, :, None].astype(float), 0), levels=[0.5],
                                       colors=[colour],
                                       linewidths=1.0, linestyles="dashed")
                            drawn.add(value)
                ax.set_xticks([])
                ax.set_yticks([])
                offset = s - n_slices // 2
                if i == 0 and j == 0:
                    ax.set_title("target slice" if offset == 0 else f"slice {offset:+d}", fontsize=8)
            line[0].set_ylabel(f"{label}\nWC{centre:g}/WW{width:g}", fontsize=8)
    fig.suptitle(f"{title}\n(axial, {RADIOLOGICAL}; region outlined in orange, lesions dashed)", fontsize=9)
    fig.tight_layout(rect=(0, 0.035, 1, 1))
    _lesion_legend(fig, drawn)
    return fig


def score_distributions(scores: dict[str, tuple[np.ndarray, np.ndarray]], title: str,
                        classes: tuple[str, str] = ("intact", "infarct")) -> plt.Figure:
    """The predicted values of each model on its test rows, split by true class (the
    distribution of predicted values per freezing depth, Jung and Whangbo's Fig. 13).

    Args:
        scores: model label -> (y (N,) in {0, 1}, score (N,) in [0, 1]).
    """
    frame = pd.concat([pd.DataFrame({"model": label, "predicted value": s,
                                     "true class": np.where(np.asarray(y) == 1, classes[1], classes[0])})
                       for label, (y, s) in scores.items()])
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(scores) + 1.5), 3.6))
    sns.violinplot(data=frame, x="model", y="predicted value", hue="true class", split=True, inner="quart",
                   cut=0, density_norm="width", ax=ax, palette=["#0072B2", "#D55E00"])
    ax.set(ylim=(0, 1), xlabel="", title=title)
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig
