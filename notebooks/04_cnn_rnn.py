# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Ischaemic vs haemorrhagic stroke on CT and MRI: CNN, CNN+RNN and transfer learning
#
# Waghmare et al. {cite:p}`waghmare` describe the toolbox of stroke-type classification:
# CNNs on slices, recurrent networks across a sequence, transfer learning, augmentation,
# HU windowing for CT and intensity scaling for MRI. They report an "ischemic stroke
# model" and a "hemorrhagic stroke model", and call every number of their tables a
# placeholder. This chapter fills that template with runs: each technique the paper
# names, trained and tested on the same patients, so that the reader sees what each one
# buys, on CT and on MRI. On the embedded cohort every number here is **synthetic**.

# %% tags=["parameters"]
profile: str = "auto"  # "smoke" | "full" | "auto" (full on CUDA, smoke otherwise)
dataset: str = "synthetic"  # "synthetic", "teknofest_2021" (2D CT slices, three classes) or "rsna_ich_2019" (CT scans, haemorrhage or none)
data_root: str = ""  # folder of a real dataset; "" reads <data directory>/<dataset>
device: str = "auto"  # auto, cpu or cuda
seed: int = 0
n_subjects: int = 0  # embedded cohort size; 0: the profile's default
in_plane: int = 0  # embedded cohort pixels per side of an axial slice; 0: the profile's default
model_in_plane: int = 0  # model input pixels per side; 0: 32 in smoke, the cohort's in full
epochs: int = 0  # 0: 11 in smoke, the profile's default in full
lr: float = 0.0  # 0: the profile's (3e-3 in smoke, 1e-3 in full)
folds: int = 0  # patient-level cross-validation; 0: the profile's default
augment: bool = False  # the book's augmentation and a flip while training; the other setting is a row
source_share: float = 0.3  # share of patients kept apart for the transfer source task
sizes: str = ""  # training-set sizes of the transfer experiment, percent of the target patients; "": 10,100 in smoke, 10,25,50,100 in full
weights: str = ""  # a local checkpoint of a slice encoder to transfer from instead of the source task
n_bootstrap: int = 0  # 0: the profile's default (2,000 in full)

# %%
import copy
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from myst_nb import glue
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stroke_lib.ct_features import ct_features
from stroke_lib.data import CohortSpec, load_dataset, read_ct_series, read_nifti
from stroke_lib.datasets import CT_WINDOW_SETS, augmentation, stroke_type_task
from stroke_lib.explain import RANDOMISATION_RULE, overlay_cases, saliency_checks
from stroke_lib.lesion_features import lesion_features
from stroke_lib.metrics import (MULTICLASS_DEFINITIONS, metrics_table, multiclass_metrics, multiclass_table,
                                paired_bootstrap)
from stroke_lib.models import GRADCAM_LAYERS, TOP_LAYERS, baseline
from stroke_lib.models.slices import slice_classifier, slice_windows
from stroke_lib.page import chapter_opening, format_interval, glue_figure, interval_column, left_out_notes
from stroke_lib.plots import confusion_matrices, ct_windows, gradcam_overlays, roc_curves
from stroke_lib.preprocess import WINDOWS
from stroke_lib.report import paper_vs_study, published, run_folder, saliency_views, write_record
from stroke_lib.runtime import start_run
from stroke_lib.train import TrainConfig, cross_validate, patient_folds, predictions_table, train_and_test
from stroke_lib.two_stage import two_stage_cv

run = start_run(profile, device, seed)
out_dir = run_folder("04_cnn_rnn", globals(), run.profile)  # the book's run, or an experiment's own folder
s = run.settings
slim = run.profile == "smoke"
epochs = epochs or (11 if slim else int(s["epochs"]))
lr = lr or float(s["lr"])
folds = folds or int(s["folds"])
n_bootstrap = n_bootstrap or int(s["bootstrap"])
synthetic = dataset == "synthetic"
tag = "synthetic" if synthetic else dataset
spec = CohortSpec(n_subjects=n_subjects or int(s["n_subjects"]), in_plane=in_plane or int(s["in_plane"]), seed=seed)
px = model_in_plane or (32 if slim else spec.in_plane)
sizes = sizes or ("10,100" if slim else "10,25,50,100")
percents = [int(v) for v in sizes.split(",")]
chapter_opening(
    ["how a 2D CNN reads a scan slice by slice, and what mean, max and attention pooling or a "
     "recurrent network across the slices add;",
     "what one brain window and the three-window stack of the RSNA solutions, augmentation, and "
     "MRI instead of CT each change, measured on the same patients with paired tests;",
     "where transfer from a haemorrhage source task helps, across training-set sizes;",
     "how to fill a results template whose every number is a placeholder, with runs and intervals."],
    run,
    {"dataset": dataset, "data_root": data_root or ("-" if synthetic else f"<data directory>/{dataset}"),
     "cohort": f"{spec.n_subjects} subjects, {spec.in_plane} px" if synthetic else "-",
     "input": f"{px} x {px} px per slice", "networks": "slim" if slim else "full", "epochs": epochs,
     "learning rate": lr, "folds": folds,
     "augmentation": "rotation, shift, zoom, intensity, noise, flip" if augment else "none",
     "source share": source_share, "transfer sizes": f"{sizes} %",
     "encoder weights": weights or "the source task of this chapter", "bootstrap replicates": n_bootstrap},
    out_dir / "results.json")

# %% [markdown]
# ## What the paper claims
#
# The paper's Tables 1 and 2 hold the same five numbers per model. Below Table 1 its own
# text says *"these values are placeholders and should be replaced with actual results
# from your study"*; Table 2 then repeats them in the results as "robust performance",
# and the discussion interprets them. Its data ("[X] CT scans and [Y] MRI scans"), model
# ("[N] convolutional layers, [M] recurrent layers"), split and learning rate ("[LR]")
# are placeholders too. From `book/published_numbers.yaml`:

# %%
claims = published("waghmare").pivot(index="cohort", columns="metric", values="published")
claims = claims.reindex(columns=["accuracy", "precision", "recall", "f1", "auc"])
claims.columns.name = "Tables 1-2 (placeholders, no run behind them)"
display(claims.map(lambda v: f"{v:.2f} (placeholder)"))

# %% [markdown]
# Nothing here can be reproduced, since nothing was run. Two readings are this chapter's,
# not the paper's: its patients are ischaemic or haemorrhagic, with no stroke-free class,
# and here a third class, none, stands beside them (the embedded cohort's and TEKNOFEST's
# classes); and the paper puts its recurrent layers on dynamic imaging such as perfusion
# MRI, where here a GRU reads the slices of a scan in order, as the RSNA 2019 solutions
# did. The chapter does what the
# template asks: it trains each technique the paper lists and puts our numbers, with
# their intervals, where the placeholders stand.
#
# ## Data: one scan of each modality per patient

# %%
t0 = time.perf_counter()
cohort = load_dataset(dataset, data_root or None, spec)
task = stroke_type_task(cohort.table, dataset, px)
timings = {"reading and preparing the inputs": time.perf_counter() - t0}
y, groups, K = task.y, task.groups, len(task.classes)
has_mri, volumes = task.mri is not None, not task.slices_are_scans
unit = "patients" if pd.Series(groups).is_unique else "scans"  # what a row is: RSNA has several scans per patient
display(task.counts(tag))
skipped = left_out_notes(cohort.rejects, task.ct.rejected)
if not has_mri:
    skipped.append(f"**MRI skipped**: {dataset} has CT only.")
if "ischaemic" not in task.classes:
    skipped.append(f"**Ischaemic stroke skipped**: {dataset} labels haemorrhage against none, so the classes are "
                   f"{' and '.join(task.classes)}, the macro AUC is the AUC of haemorrhage against none, and the "
                   "paper's ischaemic stroke model has no label to learn.")
if not volumes:
    skipped.append(f"**CNN+RNN and 3D CNN skipped**: {dataset} gives single 2D slices, so there is no "
                   "sequence of slices to read and no depth; the slice CNN reads each slice as a scan of one slice.")
if not task.ct.masks.any():
    skipped.append(f"**Localisation skipped**: {dataset} has no lesion masks on the model's grid; the "
                   "randomisation check needs none and is kept.")
if not synthetic:
    skipped.append(f"**Ceiling skipped**: the truth behind {dataset}'s labels is unknown (the embedded cohort "
                   "alone knows its lesions).")
if skipped:
    display(Markdown("\n\n".join(skipped)))
if synthetic:
    rows_by_class = [task.ct.rows[y == k].iloc[0] for k in range(K) if (y == k).any()]
    panels = [(f"{r.stroke_type}\n{r.patient_id}", read_ct_series(r.image).data, read_nifti(r["mask"]).data)
              for r in rows_by_class]
    glue_figure("fig_inputs", ct_windows(panels, [WINDOWS[w] for w in CT_WINDOW_SETS["brain, subdural and bone windows"]],
                                         f"One patient of each class, baseline NCCT ({tag})"))
else:
    glue_figure("fig_inputs", ct_windows([(f"{task.classes[y[0]]}\n{groups[0]}", task.ct.x[0, 0].numpy() * 80.0,
                                           np.zeros(task.ct.x.shape[2:], np.uint8))], [WINDOWS["brain"]],
                                         f"A slice ({tag}, brain window as the model reads it)"))

# %% [markdown]
# ```{glue:figure} fig_inputs
# :name: fig-04-inputs
# :alt: One patient of each stroke type on the slice with most lesion, in the brain, subdural and bone windows, the lesion outlined.
#
# The CT as read from the files (before brain extraction and resizing), one patient per
# class, on the slice with most lesion (outlined), in the three windows that the RSNA
# 2019 solutions stack as channels (on a dataset without lesion masks, one slice as the
# model reads it, in the brain window, without an outline): brain (WC40/WW80), subdural (WC75/WW215) and bone
# (WC600/WW2800). After brain extraction the bone window is nearly constant inside the
# brain: a stack of three windows carries little more than the brain window there.
# ```
#
# The CT is each patient's baseline NCCT: the 28 slices of 5 mm around the brain,
# brain-extracted at its own resolution (every voxel outside the CT brain mask set to air
# before resizing: resized with the skull, a bleed of 60 HU blurs into bone edges of the
# same window value), resampled to 14 slices of 10 mm and {glue:text}`px` pixels per
# side, in the three windows. The MRI is the same patients' DWI (b1000) and ADC, each
# standardised by the median and interquartile range of the brain and resized to the same
# array shape. It is a second acquisition, with its own field of view and head position,
# so its slices are not the CT's: they are labelled from the DWI's own masks.

# %%
glue("px", f"{px}", display=False)
spatial = tuple(task.ct.x.shape[2:])
affine = augmentation(spatial_dims=3, spatial_size=spatial, flip=True)
config = TrainConfig(epochs=epochs, patience=max(4, epochs // 3), lr=lr, batch_size=int(s["batch_size"]),
                     device=run.device, seed=seed, progress=False, classes=K, softmax=True, cosine=True,
                     augment=affine if augment else None)
other_aug = TrainConfig(**{**config.__dict__, "augment": None if augment else affine})
three = task.windows("brain, subdural and bone windows")
one = task.windows("brain window")


def slices(aggregation: str, channels: int, classes: int = K):
    """A maker of the chapter's slice model (``stroke_lib.models.slices``)."""
    return lambda: slice_classifier(channels, classes, aggregation, slim=slim)


stage1_runs: dict[int, list[dict]] = {}  # id of an input -> the fold records of its first unaugmented stage 1


def two_stage(x: torch.Tensor, cfg: TrainConfig):
    """The RSNA 2019 recipe (``stroke_lib.two_stage``) on the chapter's patients and folds;
    the slices labelled from the masks of the input's own acquisition (CT or MRI);
    stage 1 augmented in the full profile only. A second run on the same input whose
    stage 1 is unaugmented too takes the first one's stage 1, the same network, instead of
    training it again (only its stage 2 differs)."""
    stage1_augment = (None if cfg.augment is None or slim else
                      augmentation(spatial_dims=3, spatial_size=(*x.shape[2:4], 3), flip=True))
    reuse = stage1_runs.get(id(x)) if stage1_augment is None else None
    slice_labels = task.mri_slice_labels if has_mri and x is task.mri.x else task.slice_labels
    out = two_stage_cv(x, y, groups, slice_labels, folds, cfg, "gru", slim=slim, stage1_augment=stage1_augment,
                       stage1_from=reuse)
    if stage1_augment is None:
        stage1_runs.setdefault(id(x), out[1])
    return out


REFERENCE, MRI = "CNN + bidirectional GRU, slice-supervised", "CNN + bidirectional GRU, slice-supervised (MRI)"
runs = {REFERENCE: ("CT", "3 windows", three, "two-stage", config)}
if volumes:
    runs |= {"CNN, attention over slices": ("CT", "3 windows", three, slices("attention", 3), config),
             "CNN, mean over slices": ("CT", "3 windows", three, slices("mean", 3), config),
             "CNN, max over slices": ("CT", "3 windows", three, slices("max", 3), config),
             "CNN + bidirectional GRU, end to end": ("CT", "3 windows", three, slices("gru", 3), config),
             "3D CNN (ResNet10, chapter 01)": ("CT", "3 windows", three,
                                               lambda: baseline("resnet10", 3, slim=slim, classes=K), config)}
runs |= {f"{REFERENCE}, brain window only": ("CT", "brain window", one, "two-stage", config),
         f"{REFERENCE}, {'no augmentation' if augment else 'with augmentation'}": ("CT", "3 windows", three,
                                                                                 "two-stage", other_aug)}
if has_mri:
    runs[MRI] = ("MRI", "DWI + ADC", task.mri.x, "two-stage", config)
display(pd.DataFrame([{"model": m, "modality": mod, "input": inp, "training": "two stages" if make == "two-stage"
                       else "end to end", "parameters": f"{sum(p.numel() for p in (slices('gru', x.shape[1]) if make == 'two-stage' else make)().parameters()):,}",
                       "augmentation": "on" if cfg.augment is not None else "off"}
                      for m, (mod, inp, x, make, cfg) in runs.items()]).set_index("model"))

# %% [markdown]
# The slice CNN (`stroke_lib.models.slices`) runs three stride-2 residual stages (MONAI's
# `ResidualUnit`) over every axial slice, each slice with its two neighbours as extra
# channels (the RSNA solutions' context); each slice's map becomes one vector by its
# maximum over the plane. The slices are then combined by a learned attention weight per
# slice, their mean, their maximum, or a bidirectional GRU that reads them in order.
#
# **The reference trains in two stages, as the winning RSNA 2019 solutions did**: stage
# 1 trains the slice CNN on single slices (each with its neighbours) labelled by what
# the slice shows (the patient's stroke type on slices with lesion, none elsewhere: the
# lesion masks of the input's own acquisition on the model's grid, on the fold's training
# patients only); stage 2
# freezes it and trains the bidirectional GRU over the scan with the patient's label.
# The end-to-end rows train the same networks from the scan label alone. The 3D CNN is
# chapter 01's ResNet10 with three outputs. Training: the book's one loop
# (`stroke_lib.train.fit` with three classes: softmax cross-entropy with balanced class
# weights, AdamW, cosine schedule, early stopping on an inner patient-level validation
# split), {glue:text}`folds`-fold cross-validation by patient, the same folds and seeds
# for every model of the comparison. Augmentation, where on, is the book's (random
# rotation, shift, zoom, intensity scale and noise: `stroke_lib.datasets.augmentation`)
# with a left-right flip, which keeps the stroke type; the paper lists rotation,
# translation and flipping. In the two-stage models stage 2 is augmented, and in the full
# profile stage 1 too (the smoke profile leaves stage 1 unaugmented: augmenting each of its
# slices one by one on 2 CPU cores costs more than the rest of the row; the row that
# differs from the reference by its augmentation then has the reference's stage 1, the
# same network, and trains only its own stage 2).
#
# ## Every technique on the same patients

# %%
glue("folds", f"{folds}", display=False)
names = list(task.classes)
scores, tables, fold_records, preds = {}, {}, {}, []
for model, (modality, inp, x, make, cfg) in runs.items():
    t0 = time.perf_counter()
    scores[model], fold_records[model] = (two_stage(x, cfg) if make == "two-stage"
                                           else cross_validate(make, x, y, groups, folds, cfg))
    timings[f"{model}, {folds}-fold CV"] = time.perf_counter() - t0
    tables[model] = multiclass_table(y, scores[model], groups, names, n_boot=n_bootstrap, seed=seed)
    preds.append(predictions_table(groups, task.ct.rows.scan_id, y, scores[model], names, model=model))


def macro_auc(yy: np.ndarray, pp: np.ndarray) -> float:
    return multiclass_metrics(yy, pp)["macro_auc"]


def p_text(p: float) -> str:
    """A bootstrap p-value as the page prints it: 0 means no replicate crossed 0, so p < 2 / replicates."""
    return f"< {2 / n_bootstrap:.3g}" if p == 0 else f"{p:.3f}"


ROWS = ["macro_auc", "weighted_auc", "accuracy", "macro_f1", "weighted_f1"] + [f"auc {c}" for c in names]
comparison, tests = [], {}
for model, (modality, inp, *_rest) in runs.items():
    t = tables[model]
    row = {"model": model, "modality": modality, "input": inp}
    row |= {m: format_interval(*t.loc[m, ["estimate", "lower", "upper"]]) for m in ROWS}
    if model != REFERENCE:
        tests[model] = paired_bootstrap(y, scores[model], scores[REFERENCE], groups, macro_auc, n_boot=n_bootstrap,
                                        seed=seed)
        row |= {"macro AUC minus reference [95% CI]": format_interval(tests[model]["difference"], tests[model]["lower"],
                                                                     tests[model]["upper"]),
                "paired p": p_text(tests[model]["p"])}
    comparison.append(row)
comparison = pd.DataFrame(comparison).set_index("model").fillna("-")
comparison.columns.name = f"{tag}, {folds}-fold CV, estimate [95% CI]"
comparison

# %%
ref = tables[REFERENCE].loc["macro_auc"]
glue("ref_auc", f"{format_interval(ref.estimate, ref.lower, ref.upper)} ({tag})", display=False)
glue("ref_verdict", "its interval lies above 0.5" if ref.lower > 0.5 else "its interval includes 0.5: this run "
     "does not show that it learned the stroke type", display=False)
verdicts = [f"{m} ({'higher' if t['difference'] > 0 else 'lower'} by {abs(t['difference']):.3f}, p {p_text(t['p'])})"
            for m, t in tests.items() if t["p"] < 0.05]
bonferroni = 0.05 / max(len(tests), 1)
strict = [m for m, t in tests.items() if t["p"] < bonferroni]
glue("paired_text", ("Different from the reference by the paired bootstrap at 0.05: " + "; ".join(verdicts) + ". No "
                     "other difference is significant at 0.05." if verdicts else
                     "No difference from the reference is significant at 0.05 by the paired bootstrap.")
     + f" With {len(tests)} comparisons against one reference, a Bonferroni level of {bonferroni:.4f} keeps "
     + (", ".join(strict) if strict else "none of them") + ".", display=False)
counts = np.bincount(y, minlength=K)
glue("no_skill", f"Calling every one of the {unit} {names[int(counts.argmax())]}, the most common class, is right on "
     f"{counts.max() / len(y):.3f} of them: the accuracy that takes no skill ({tag}).", display=False)
if has_mri:
    mri = tables[MRI].loc["macro_auc"]
    glue("mri_text", f"The same model on MRI reaches {format_interval(mri.estimate, mri.lower, mri.upper)} ({tag}).",
         display=False)
else:
    glue("mri_text", f"{dataset} has no MRI.", display=False)
definitions = pd.DataFrame({"definition": {m: MULTICLASS_DEFINITIONS[m] for m in ROWS[:5]}
                            | {"auc <class>": MULTICLASS_DEFINITIONS["auc <class>"]}})
display(definitions)

# %% [markdown]
# The reference, the slice-supervised CNN + GRU on the three-window CT, has a macro AUC of {glue:text}`ref_auc`: {glue:text}`ref_verdict`. {glue:text}`mri_text`
# {glue:text}`paired_text` Each difference is the macro AUC of the row minus that of the
# reference on the same patients, with an interval and a two-sided p-value from
# {glue:text}`n_boot` paired patient-bootstrap replicates (both models scored on each
# replicate's patients). {glue:text}`no_skill`

# %%
glue("n_boot", f"{n_bootstrap:,}", display=False)
main = {"CT": scores[REFERENCE]} | ({"MRI": scores[MRI]} if has_mri else {})
for modality, sc in main.items():
    curves = {f"{c} vs rest": ((y == k).astype(int), sc[:, k], groups) for k, c in enumerate(names)}
    glue_figure(f"fig_roc_{modality.lower()}", roc_curves(
        curves, f"One-vs-rest ROC of the reference on {modality}\n{folds}-fold CV ({tag})", n_boot=n_bootstrap, seed=seed))
if not has_mri:
    fig, ax = plt.subplots(figsize=(4, 1))
    ax.text(0.5, 0.5, f"{dataset} has no MRI", ha="center", va="center")
    ax.axis("off")
    glue_figure("fig_roc_mri", fig)
glue_figure("fig_confusion", confusion_matrices({m: (y, sc.argmax(1)) for m, sc in main.items()}, names,
                                                f"Reference model: most probable class against the true one ({tag})"))

# %% [markdown]
# ```{glue:figure} fig_roc_ct
# :name: fig-04-roc-ct
# :alt: One-vs-rest ROC curves of each stroke type for the reference model on CT, with shaded 95% bands.
#
# One-vs-rest ROC curves of each class for the reference model on CT, out of fold, each
# with a pointwise 95% band over patient-bootstrap replicates.
# ```
#
# ```{glue:figure} fig_roc_mri
# :name: fig-04-roc-mri
# :alt: One-vs-rest ROC curves of each stroke type for the reference model on MRI, with shaded 95% bands.
#
# The same for the reference model on MRI (DWI and ADC) of the same patients.
# ```
#
# ```{glue:figure} fig_confusion
# :name: fig-04-confusion
# :alt: Three by three confusion matrices of the reference model on CT and on MRI.
#
# Confusion matrices of the reference model on CT and on MRI: each patient's most
# probable class (columns) against the true one (rows), out of fold.
# ```
#
# ## The paper's two models, filled in
#
# The paper's "ischemic stroke model" and "hemorrhagic stroke model" are read as two
# binary models: ischaemic against the rest, haemorrhagic against the rest. Each is the
# slice CNN with attention over slices and one output, trained end to end on the same
# folds (the two-stage reference would double the smoke profile's time); its metrics at
# the threshold 0.5 are positive-class ones (precision is PPV, recall is sensitivity),
# with patient-bootstrap intervals, or Wilson's where a proportion is 0 or 1. The
# paper's placeholders stand beside them, marked as what they are.

# %%
binary = {label: cls for label, cls in (("ischaemic stroke model", "ischaemic"),
                                        ("haemorrhagic stroke model", "haemorrhagic")) if cls in names}
binary_cfg = TrainConfig(**{**config.__dict__, "classes": 2, "softmax": False})
binary_tables, binary_notes = {}, []
for label, cls in binary.items():
    yb = (y == names.index(cls)).astype(int)
    t0 = time.perf_counter()
    sb, _ = cross_validate(slices("attention", 3, classes=1), three, yb, groups, folds, binary_cfg)
    timings[f"{label}, {folds}-fold CV"] = time.perf_counter() - t0
    binary_tables[label] = metrics_table(yb, sb, groups, n_boot=n_bootstrap, seed=seed)
    preds.append(predictions_table(groups, task.ct.rows.scan_id, yb, sb, model=label))
    display(paper_vs_study("waghmare", f"{label} (placeholder)", binary_tables[label],
                           f"{cls} vs rest, {tag} {folds}-fold CV [95% CI]"))
    a, called = binary_tables[label].loc["auc"], int((sb >= 0.5).sum())
    share = max(yb.mean(), 1 - yb.mean())
    binary_notes.append(
        f"The {label} ({tag}) calls {called} of {len(yb)} {unit} {cls} at 0.5; its AUC is "
        f"{format_interval(a.estimate, a.lower, a.upper)}"
        + (", an interval that includes 0.5: it has not learned to tell the class apart" if a.lower <= 0.5 else "")
        + f". Its accuracy, {binary_tables[label].loc['accuracy', 'estimate']:.3f}, stands against {share:.3f} for "
        f"calling every one the more common side" + (" (it puts every one on one side, so its F1 has no "
                                                          "interval)" if called in (0, len(yb)) else "") + ".")
display(Markdown(" ".join(binary_notes)))

# %% [markdown]
# ## Transfer learning: where a source task helps
#
# **Source task**: haemorrhage against none on single CT slices, the task of the RSNA
# 2019 challenge, on a share ({glue:text}`source_share`) of the patients **kept apart**:
# they are in no target training or test set. Each sample is a slice with its two
# neighbours, labelled by whether it shows haemorrhage, read by the same encoder
# (`aggregation="centre"`). **Target**: the three stroke types on the other patients,
# by the slice CNN with attention over slices trained end to end, in
# {glue:text}`folds`-fold cross-validation; in each fold the training part is cut to
# {glue:text}`sizes` % of its patients (stratified by class, at least five patients per
# class so that every part of the inner validation split keeps every class).
# **Fine-tuned**: the encoder starts from the source model's weights and every layer
# trains; **scratch**: random initial weights. The same folds, subsets and seeds for both.
# These are other patients and other folds than the comparison above (the source
# patients are out), and the model is the end-to-end attention CNN, so the 100 % row is
# not a row of that table. {glue:text}`weights_text`

# %%
glue("source_share", f"{source_share:g}", display=False)
glue("sizes", ", ".join(f"{p}" for p in percents), display=False)
patients = pd.Series(y, index=groups).groupby(level=0).max()  # a patient's class: that of its most severe scan
_, source_patients = train_test_split(patients.index, test_size=source_share, stratify=patients, random_state=seed)
source = np.flatnonzero(np.isin(groups, source_patients))
rest = np.flatnonzero(~np.isin(groups, source_patients))
t0 = time.perf_counter()
if weights:
    state = torch.load(Path(weights), map_location="cpu", weights_only=True)
    encoder_state = {k.removeprefix("encoder."): v for k, v in state.items() if not k.startswith(("head.", "aggregate."))}
    glue("weights_text", f"The encoder's weights are read from `{Path(weights).name}` (`-p weights`), not trained on "
         "the source task.", display=False)
    source_auc = None
else:
    x_src = slice_windows(three[source])
    haemorrhage = (task.slice_labels[source] == names.index("haemorrhagic")).astype(int)
    y_src, g_src = haemorrhage.reshape(-1), np.repeat(groups[source], three.shape[-1])
    src_cfg = TrainConfig(**{**config.__dict__, "classes": 2, "softmax": False, "augment": None,
                             "batch_size": 4 * config.batch_size})
    bleeds = pd.Series(haemorrhage.any(1), index=groups[source]).groupby(level=0).max()  # per patient
    tr, te = train_test_split(bleeds.index, test_size=0.25, random_state=seed,
                              stratify=bleeds if 2 <= bleeds.sum() <= len(bleeds) - 2 else None)
    tr, te = np.isin(g_src, tr), np.isin(g_src, te)
    src_out = train_and_test(slices("centre", 3, classes=1), x_src[tr], y_src[tr], g_src[tr], x_src[te], src_cfg)
    encoder_state = src_out["fit"].model.encoder.state_dict()
    source_auc = metrics_table(y_src[te], src_out["score_test"], g_src[te], n_boot=n_bootstrap, seed=seed).loc["auc"]
    glue("weights_text", f"The source model is trained on {int(tr.sum())} slices ({int(y_src[tr].sum())} showing "
         f"haemorrhage) of {len(np.unique(g_src[tr]))} source patients, with early stopping on a part of them, and "
         f"tested on the slices of {len(np.unique(g_src[te]))} other source patients: AUC "
         f"{format_interval(source_auc.estimate, source_auc.lower, source_auc.upper)} ({tag}).", display=False)
timings["source task"] = time.perf_counter() - t0


def transferred():
    model = slice_classifier(3, K, "attention", slim=slim)
    model.encoder.load_state_dict(encoder_state)
    return model


def subset(tr: np.ndarray, percent: int, rng: np.random.Generator) -> np.ndarray:
    """``percent`` % of the training rows ``tr``, stratified by class, at least five per class."""
    keep = []
    for k in range(K):
        rows = tr[y_t[tr] == k]
        keep.append(rng.choice(rows, size=min(len(rows), max(5, round(percent / 100 * len(rows)))), replace=False))
    return np.sort(np.concatenate(keep))


x_t, y_t, g_t = three[rest], y[rest], groups[rest]
splits = patient_folds(y_t, g_t, folds, seed, classes=K)
t0 = time.perf_counter()
transfer_rows, transfer_scores = [], {}
for percent in percents:
    rng = np.random.default_rng(seed + percent)
    parts = [(tr, te, subset(tr, percent, rng)) for tr, te in splits]
    for arm, make in (("scratch", slices("attention", 3)), ("fine-tuned", transferred)):
        oof = np.full((len(y_t), K), np.nan)
        for k, (tr, te, sub) in enumerate(parts):
            cfg = TrainConfig(**{**config.__dict__, "seed": seed + k})
            oof[te] = train_and_test(make, x_t[sub], y_t[sub], g_t[sub], x_t[te], cfg)["score_test"]
        transfer_scores[arm, percent] = oof
        t = multiclass_table(y_t, oof, g_t, names, n_boot=n_bootstrap, seed=seed).loc["macro_auc"]
        transfer_rows.append({"training patients (%)": percent, "arm": arm,
                              "training patients per fold": int(np.mean([len(sub) for *_p, sub in parts])),
                              "macro AUC": t.estimate, "lower": t.lower, "upper": t.upper})
timings["transfer experiment"] = time.perf_counter() - t0
transfer = pd.DataFrame(transfer_rows)
gain = []
for percent in percents:
    d = paired_bootstrap(y_t, transfer_scores["fine-tuned", percent], transfer_scores["scratch", percent], g_t, macro_auc,
                         n_boot=n_bootstrap, seed=seed)
    gain.append({"training patients (%)": percent,
                 "fine-tuned minus scratch [95% CI]": format_interval(d["difference"], d["lower"], d["upper"]),
                 "paired p": p_text(d["p"]), "difference": d["difference"], "lower": d["lower"], "upper": d["upper"],
                 "p": d["p"]})
gain = pd.DataFrame(gain).set_index("training patients (%)")
view = transfer.assign(**{"macro AUC [95% CI]": [format_interval(r["macro AUC"], r.lower, r.upper)
                                                 for _, r in transfer.iterrows()]})
view = view.pivot(index="training patients (%)", columns="arm", values="macro AUC [95% CI]").join(
    transfer.drop_duplicates("training patients (%)").set_index("training patients (%)")[["training patients per fold"]]
).join(gain.drop(columns=["difference", "lower", "upper", "p"]))
view.columns.name = f"{tag}: {len(rest)} target patients, {folds}-fold CV"
view

# %%
fig, ax = plt.subplots(figsize=(5.6, 3.8))
for arm, marker in (("scratch", "o"), ("fine-tuned", "s")):
    part = transfer[transfer.arm == arm]
    ax.errorbar(part["training patients (%)"], part["macro AUC"],
                yerr=[part["macro AUC"] - part.lower, part.upper - part["macro AUC"]], marker=marker, capsize=3,
                label=arm)
ax.axhline(0.5, color="grey", lw=0.8, ls="--", label="chance")
per_fold = transfer.drop_duplicates("training patients (%)")["training patients per fold"].tolist()
ax.set(xlabel="training patients: % of each fold's training part (patients, at least 5 per class)",
       ylabel="macro one-vs-rest AUC", title=f"Transfer from the haemorrhage source task ({tag})", xticks=percents)
ax.set_xticklabels([f"{p}\n({n})" for p, n in zip(percents, per_fold)])
ax.legend(fontsize=8)
fig.tight_layout()
glue_figure("fig_transfer", fig)
helped = [p for p, r in gain.iterrows() if r.p < 0.05 and r.difference > 0]
hurt = [p for p, r in gain.iterrows() if r.p < 0.05 and r.difference < 0]
above = [(r.arm, r["training patients (%)"]) for _, r in transfer.iterrows() if r.lower > 0.5]
below = [(r.arm, r["training patients (%)"]) for _, r in transfer.iterrows() if r.upper < 0.5]
chance = ("" if above else "Neither arm's interval lies above 0.5 at any size: in this run neither learned the stroke "
          "type, so it cannot say where transfer helps. ") + (
    f"The interval of {', '.join(f'{a} at {p} %' for a, p in below)} lies below 0.5: the known pessimism of "
    "cross-validation for a model that learns little beyond its training part's class mix, since each test fold "
    "holds the complement of that mix. " if below else "")
glue("transfer_text", chance + (f"Fine-tuning beats training from scratch at {', '.join(f'{p} %' for p in helped)} of the "
                       "training patients" if helped else "At no training-set size does fine-tuning beat training "
                       "from scratch significantly")
     + (f", and loses at {', '.join(f'{p} %' for p in hurt)}" if hurt else "")
     + f" (paired bootstrap, 0.05; differences {', '.join(f'{r.difference:+.3f}' for _, r in gain.iterrows())} "
     f"at {', '.join(f'{p} %' for p in percents)}; {tag}).", display=False)

# %% [markdown]
# ```{glue:figure} fig_transfer
# :name: fig-04-transfer
# :alt: Macro AUC with 95% intervals against the share of training patients, for training from scratch and for fine-tuning from the source task.
#
# Macro one-vs-rest AUC of the attention slice CNN trained from scratch and fine-tuned from
# the haemorrhage source task, at each training-set size, on the same target patients,
# folds and subsets; bars are 95% patient-bootstrap intervals.
# ```
#
# {glue:text}`transfer_text`
#
# ## What the maps look at
#
# Grad-CAM {cite:p}`selvaraju2017gradcam` and LayerCAM {cite:p}`jiang2021layercam` of
# each patient's most probable class at the encoder's output (one map per slice) of the
# reference model of the first fold, on that fold's test patients (those with a lesion
# for the localisation scores), against the same
# network with random weights, and the randomisation check {cite:p}`adebayo2018sanity`
# (it passes when the interval of the mean Spearman correlation lies below
# {glue:text}`rand_rule`), as in chapter 01. *Energy in lesion* is the share of a map's
# sum that falls inside the lesion; a map that is the same everywhere scores the
# lesion's share of the brain, so *energy / share* is 1 for it and below 1 for a map
# that avoids the lesion. The *pointing game* asks whether a map's maximum lies in the
# lesion; by chance it does with the lesion's share of the brain.

# %%
glue("rand_rule", f"{RANDOMISATION_RULE}", display=False)
t0 = time.perf_counter()
te0 = fold_records[REFERENCE][0]["test_index"]
first = copy.deepcopy(fold_records[REFERENCE][0]["fit"].model)
for p in first.parameters():  # the frozen encoder's weights need gradients for the maps, not for training
    p.requires_grad_(True)
has_masks = bool(task.ct.masks[te0].any())
reports = {REFERENCE: saliency_checks(first, three[te0], task.ct.masks[te0], task.ct.brains[te0], GRADCAM_LAYERS["slices"],
                                      TOP_LAYERS["slices"], groups=groups[te0], seed=seed, n_boot=n_bootstrap,
                                      localise=has_masks, class_idx=None)}
timings["saliency checks"] = time.perf_counter() - t0
loc_view, verdict_view, sentences = saliency_views(reports, tag)
if loc_view is not None:
    display(loc_view)
display(verdict_view)
glue("saliency_verdicts", Markdown(sentences), display=False)
if volumes:
    rows_fig = [(f"{why}\n{groups[te0][i]} ({names[y[te0][i]]})", three[te0[i], 0].numpy(),
                 reports[REFERENCE].maps["Grad-CAM", "trained"][i], task.ct.masks[te0[i]])
                for why, i in overlay_cases(task.ct.masks[te0])]
    glue_figure("fig_saliency", gradcam_overlays(rows_fig, f"Grad-CAM of the reference CT model ({tag})"))
else:
    rows_fig = [(f"{groups[te0][i]} ({names[y[te0][i]]})", three[te0[i], 0].numpy(),
                 reports[REFERENCE].maps["Grad-CAM", "trained"][i], task.ct.masks[te0[i]]) for i in range(min(2, len(te0)))]
    glue_figure("fig_saliency", gradcam_overlays(rows_fig, f"Grad-CAM of the reference model ({tag})", n_slices=1))

# %% [markdown]
# In words, from the tables above:
#
# ```{glue:md} saliency_verdicts
# :format: myst
# ```
#
# ```{glue:figure} fig_saliency
# :name: fig-04-saliency
# :alt: Grad-CAM of the reference CT model over axial slices of two test patients, the lesion outlined.
#
# Grad-CAM of the reference model over slices around the lesion of two test patients
# chosen by lesion size (the largest and the median), brain window, lesion outlined; on a
# dataset without lesion masks, the first two test scans, without an outline.
# Whether the maps mean anything is in the tables above, not in this figure.
# ```
#
# ## How far from the best possible
#
# **Ceiling**: the stroke type has no hidden cause, so a reader of the truth is right on
# every patient (macro AUC 1). What the model's input keeps of it is the **mask reader
# at the model's grid**: a perfect reader of the true lesion masks resized as the
# inputs are, who calls haemorrhage or infarct wherever one voxel of it remains and none
# otherwise. **Without deep learning**: a multinomial logistic regression on what a
# reader measures on the CT without any label (`stroke_lib.ct_features`: volume darker
# than its mirror image, hyperdense volume, deep hypodense share) and, on MRI, on the
# DWI lesion measurements of chapter 02 (`stroke_lib.lesion_features`), on the same folds.
# The measurements read each scan at its own resolution (64 px, 5 mm slices on the
# embedded cohort), the networks the resized input.

# %%
t0 = time.perf_counter()
folds_all = patient_folds(y, groups, folds, seed, classes=K)
baselines = {}
if volumes:
    designs = {"CT measurements (logistic regression)": ct_features(task.ct.rows, task.read_ct).to_numpy(float)}
    if has_mri:
        designs["DWI measurements (logistic regression)"] = lesion_features(task.mri.rows).to_numpy(float)
    for label, X in designs.items():
        oof = np.zeros((len(y), K))
        for tr, te in folds_all:
            oof[te] = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
                np.nan_to_num(X[tr]), y[tr]).predict_proba(np.nan_to_num(X[te]))
        baselines[label] = oof
timings["measurements and logistic regressions"] = time.perf_counter() - t0
ceiling_rows = []
if synthetic:
    visible = task.ct.masks.reshape(len(y), -1).any(1)
    reader = np.eye(K)[np.where(visible, y, names.index("none"))]
    ceiling_rows.append(("mask reader at the model's grid (ceiling of the input)", reader))
    ceiling_rows.append(("truth (oracle ceiling)", np.eye(K)[y]))
for label, sc in [(REFERENCE + " (CT)", scores[REFERENCE])] + list(baselines.items()) + ceiling_rows:
    t = multiclass_table(y, sc, groups, names, n_boot=n_bootstrap, seed=seed)
    tables[label] = t
ceiling_view = pd.DataFrame({label: interval_column(tables[label].reindex(["macro_auc", "accuracy", "macro_f1"]))
                             for label in [REFERENCE + " (CT)", *baselines, *[c for c, _ in ceiling_rows]]}).T
ceiling_view.columns.name = f"{tag}, {folds}-fold CV, estimate [95% CI]"
display(ceiling_view)
against = [("CT measurements (logistic regression)", REFERENCE), ("DWI measurements (logistic regression)", MRI)]
sentences_ceiling = []
for measured, network in against:
    if measured in baselines and network in scores:
        d = paired_bootstrap(y, baselines[measured], scores[network], groups, macro_auc, n_boot=n_bootstrap, seed=seed)
        sentences_ceiling.append(
            f"{measured.split(' (')[0]} minus the reference on {'CT' if network == REFERENCE else 'MRI'}, macro AUC: "
            f"{d['difference']:+.3f} [{d['lower']:+.3f}, {d['upper']:+.3f}] (paired bootstrap p {p_text(d['p'])}).")
if synthetic:
    reader_auc = tables["mask reader at the model's grid (ceiling of the input)"].loc["macro_auc", "estimate"]
    sentences_ceiling.append(f"The mask reader at the model's grid reaches {reader_auc:.3f}: the resized input keeps "
                             "nearly every lesion, so what the networks miss is not lost in the resizing.")
display(Markdown(" ".join(sentences_ceiling) + f" ({tag})" if sentences_ceiling else ""))

# %% [markdown]
# ## Size, time and the run record

# %%
cost = pd.DataFrame({"seconds": pd.Series(timings).map("{:.1f}".format)})
cost.columns.name = f"{run.device}, {run.profile} profile"
display(cost)
out_dir.mkdir(parents=True, exist_ok=True)
pd.concat(preds, ignore_index=True).to_csv(out_dir / "predictions.csv", index=False)
write_record(out_dir / "results.json", run,
             {"dataset": dataset, "n_subjects": spec.n_subjects, "in_plane": spec.in_plane, "model_in_plane": px,
              "epochs": epochs, "lr": lr, "folds": folds, "augment": augment, "source_share": source_share,
              "sizes": percents, "weights": weights, "n_bootstrap": n_bootstrap},
             {**tables, **{f"{k} (binary)": v for k, v in binary_tables.items()}}, timings, out_dir / "predictions.csv",
             {"paired_vs_reference": tests, "transfer": transfer_rows,
              "transfer_gain": gain.reset_index().to_dict(orient="records"),
              "source_auc": None if source_auc is None else source_auc.to_dict(),
              "skipped": skipped,
              "saliency": {f"{m} {method}": r.to_dict() for m, rep in reports.items()
                           for method, r in rep.verdicts.iterrows()}})
display(Markdown("The run record (`results.json`) holds every metric with its interval, the paired tests, the "
                 "transfer experiment and the predictions of every model."))

# %% [markdown]
# ## Try it yourself
#
# - `-p model_in_plane 64`: the CT and MRI at the cohort's own resolution (slower).
# - `-p augment true`: every model with augmentation (the comparison then shows the reference without).
# - `-p sizes 5,10,100`: other training-set sizes for the transfer experiment.
# - `-p weights encoder.pt`: transfer from a slice encoder you trained elsewhere (a
#   `state_dict` of `stroke_lib.models.slices.SliceClassifier` or of its encoder).
# - `-p profile full` on a GPU: 1,000 subjects at 128 px and the full networks.
# - `-p dataset teknofest_2021`: TEKNOFEST 2021's 2D CT slices (none / ischaemic /
#   haemorrhagic) from `<data directory>/teknofest_2021`; no MRI, no CNN+RNN or 3D model
#   (single slices), no localisation and no ceiling.
# - `-p dataset rsna_ich_2019`: the RSNA 2019 haemorrhage challenge's CT from
#   `<data directory>/rsna_ich_2019` (`stage_2_train.csv` and `stage_2_train/`), each
#   scan's slices read as one series and prepared as above, haemorrhage (any subtype)
#   against none with the release's slice labels for stage 1; no MRI, no ischaemic
#   class, no localisation (no masks) and no ceiling.
#
# Reporting checklist items this chapter covers: the paper's placeholders named as such,
# patient-level splits, the same folds and seeds for every compared model with paired
# tests, intervals on every metric, a baseline without deep learning, the ceiling of the
# task and of the input, saliency maps with controls, a transfer source kept apart from
# the target patients, parameter counts and time.
