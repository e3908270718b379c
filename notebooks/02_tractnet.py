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
# # Stroke severity from DWI with TRACT-NET
#
# TRACT-NET {cite:p}`oh2026tractnet` classifies **minor vs non-minor ischaemic stroke**
# from diffusion-weighted MRI: a 3D network whose skip connections mix a 3D
# coordinate-attention module {cite:p}`hou2021coordinate` and a 3D efficient
# self-attention module {cite:p}`shen2021efficient`, with Mamba {cite:p}`gu2023mamba` at
# the bottleneck. This chapter builds the most faithful reading of its abstract (the only
# part that is public), trains it on the folds and seeds of chapter 01's baselines,
# takes it apart piece by piece, and sets it against a baseline without deep learning:
# the lesion volume measured from the images. On the embedded cohort every number here
# is **synthetic**.

# %% tags=["parameters"]
profile: str = "auto"  # "smoke" | "full" | "auto" (full on CUDA, smoke otherwise)
dataset: str = "synthetic"  # "synthetic" or "soop" (a real dataset with NIHSS; see data_manifests/)
data_root: str = ""  # folder of a real dataset; "" reads <data directory>/<dataset>
device: str = "auto"  # auto, cpu or cuda
seed: int = 0
n_subjects: int = 0  # embedded cohort size; 0: the profile's default
in_plane: int = 0  # embedded cohort pixels per side of an axial slice; 0: the profile's default
epochs: int = 0  # TRACT-NET and its ablations; 0: 30 in smoke, the profile's default in full
baseline_epochs: int = 0  # chapter 01's baselines; 0: the profile's default, as chapter 01
lr: float = 0.0  # TRACT-NET and its ablations; 0: the baselines' (the profile's)
folds: int = 0  # 0: the profile's default
ablation_folds: int = 0  # folds the ablations train on; 0: the first fold in smoke, all in full
n_bootstrap: int = 0  # 0: the profile's default (2,000 in full)
nihss_cutoff: int = 3  # NIHSS at or below this is minor stroke

# %%
import inspect
import json
import re
import time

import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stroke_lib.data import CohortSpec, load_dataset
from stroke_lib.data.synthetic.labels import NIHSS_MINOR_CUTOFF
from stroke_lib.datasets import augmentation, severity_task
from stroke_lib.explain import CAM_METHODS, RANDOMISATION_RULE, overlay_cases, saliency_checks
from stroke_lib.lesion_features import ADC_CORE_MAX, DWI_RATIO_MIN, MIN_COMPONENT_ML, lesion_features
from stroke_lib.metrics import calibration, delong_test, metrics_table, youden_threshold
from stroke_lib.models import GRADCAM_LAYERS, TOP_LAYERS, baseline, mamba_backends, tractnet
from stroke_lib.page import chapter_opening, format_interval, glue_figure, interval_column
from stroke_lib.paths import data_dir, run_name
from stroke_lib.plots import (confusion_matrices, gradcam_overlays, lesion_volumes, reliability, roc_curves,
                               tractnet_architecture, training_curves)
from stroke_lib.report import (ceiling_beside_auc, glue_metrics, paper_vs_study, published,
                               published_roc_points, run_folder, saliency_views, write_record)
from stroke_lib.runtime import start_run
from stroke_lib.train import TrainConfig, cross_validate, patient_folds, predictions_table, train_and_test

run = start_run(profile, device, seed)
out_dir = run_folder("02_tractnet", globals(), run.profile)  # the book's run, or an experiment's own folder
s = run.settings
slim = run.profile == "smoke"
epochs = epochs or (30 if slim else int(s["epochs"]))
baseline_epochs = baseline_epochs or int(s["epochs"])
lr = lr or float(s["lr"])
folds = folds or int(s["folds"])
ablation_folds = min(ablation_folds or (1 if slim else folds), folds)
n_bootstrap = n_bootstrap or int(s["bootstrap"])
synthetic = dataset == "synthetic"
tag = "synthetic" if synthetic else dataset
spec = CohortSpec(n_subjects=n_subjects or int(s["n_subjects"]),
                  in_plane=in_plane or int(s["in_plane"]), seed=seed)
chapter_opening(
    ["what TRACT-NET's abstract says, and every place where building it means interpreting it;",
     "how to compare a new network with baselines on the same folds and seeds, so that a "
     "paired DeLong test is valid;",
     "what each part of the network is worth (ablations), and whether the deep model beats "
     "the lesion volume measured by two thresholds;",
     "Grad-CAM of TRACT-NET with the controls of chapter 01."],
    run,
    {"dataset": dataset, "data_root": data_root or ("-" if synthetic else f"<data directory>/{dataset}"),
     "cohort": f"{spec.n_subjects} subjects, {spec.in_plane} px" if synthetic else "-",
     "NIHSS cut-off (minor: at or below)": nihss_cutoff,
     "epochs (TRACT-NET, ablations)": epochs, "epochs (baselines)": baseline_epochs,
     "learning rate (TRACT-NET, ablations)": lr, "learning rate (baselines)": s["lr"], "folds": folds,
     "ablations trained on": f"the first {ablation_folds} of {folds} folds" if ablation_folds < folds
     else f"all {folds} folds", "bootstrap replicates": n_bootstrap,
     "input": f"DWI, {s['input_shape']}", "TRACT-NET": "slim" if slim else "full"},
    out_dir / "results.json")

# %% [markdown]
# ## What the paper claims
#
# TRACT-NET was trained with three-fold cross-validation on 273 patients of Asan Medical
# Center (AMC) and validated externally on 1,106 patients of SOOP
# {cite:p}`absher2024soop`. The abstract gives these numbers (read from
# `book/published_numbers.yaml`, with what each one can mean):

# %%
claims = published("tractnet").pivot(index=["metric", "definition"], columns="cohort", values="published")
claims.columns.name = "published, real cohorts"
claims

# %% [markdown]
# Two things in that table decide how we compare. The "sensitivity" equals the accuracy
# on both cohorts, which only a class-weighted recall does (chapter 01 shows why), so it
# sits beside our weighted recall; and the AUC on AMC equals the accuracy to four
# decimals, which an AUC computed from continuous scores rarely does. The paper gives no
# NIHSS cut-off; we use NIHSS ≤ {glue:text}`cutoff` as minor {cite:p}`fischer2010`.
#
# ## The network, as we read it
#
# The abstract names the parts (a mixture-residual block whose skip connection embeds a
# 3D coordinate-attentive and a 3D efficient self-attentive module; Mamba at the
# bottleneck) but not how they are wired. Our reading is in {py:mod}`stroke_lib.models.tractnet`;
# the figure draws it at this run's input size, with the map sizes of one forward pass.

# %%
glue("cutoff", f"{nihss_cutoff}", display=False)
in_channels = 1  # DWI alone, as the paper reads it and as chapter 01's baselines do
glue_figure("fig_architecture", tractnet_architecture(
    tractnet(in_channels, slim=slim), (in_channels, *s["input_shape"]),
    f"TRACT-NET as built here ({'slim, smoke profile' if slim else 'full profile'}; our reading of the abstract)"))

# %% [markdown]
# ```{glue:figure} fig_architecture
# :name: fig-02-architecture
# :alt: Block diagram: DWI input, a strided stem, four stages of mixture-residual blocks, a Mamba bottleneck and global pooling to one logit; below, the mixture-residual block, whose skip path mixes identity, 3D coordinate attention and 3D efficient self-attention with learned weights.
#
# TRACT-NET as this chapter builds it. Top: the path from the DWI volume to one logit
# (minor vs non-minor), each box with its channels and map size at this run's input.
# Bottom: the mixture-residual block, in every stage; its skip path is a learned convex
# mixture of identity, 3D coordinate attention and 3D efficient self-attention.
# ```
#
# Everything the abstract leaves open is our choice. The module's docstring lists each
# one, and the list below is read from it:

# %%
doc = inspect.getmodule(tractnet).__doc__  # stroke_lib.models.tractnet
interpretations = doc.split("Interpretations where the abstract is silent")[1].split("\nShapes:")[0]
items = re.split(r"\n(?=\d+\. )", interpretations.strip())
display(Markdown("\n".join(" ".join(t.split()) for t in items)))

# %% [markdown]
# Two of them matter for what follows. Interpretation 10: the module accepts DWI and ADC,
# but this chapter feeds **DWI alone**, as the abstract names only DWI and as chapter 01's
# baselines read it, so every network here sees the same input. And the sizes: the
# smoke profile builds the slim network on 48³ volumes so that the chapter runs on two
# CPU cores; the full profile builds the full one on 128 x 128 x 64.
#
# ## Data: ischaemic stroke patients' DWI
#
# As in chapter 01: one DWI b1000 trace per ischaemic stroke patient, standardised within
# the brain by its median and interquartile range, resized once. The positive class is
# non-minor stroke (NIHSS > {glue:text}`cutoff`).

# %%
cohort = load_dataset(dataset, data_root or None, spec, modalities=("DWI",))  # the chapter reads DWI only
task = severity_task(cohort.table, nihss_cutoff, s["input_shape"])
data, internal, external, internal_site = task.data, task.internal, task.external, task.internal_site
has_external, has_masks, ev_int, ev_ext = task.has_external, task.has_masks, task.ev_int, task.ev_ext
task.counts(tag)

# %%
display(Markdown(task.availability(
    dataset, synthetic, f"Site {internal_site} is cross-validated, as the paper did on AMC; the other "
    "site is the external evaluation, as SOOP was for the paper, and lesion masks score the saliency maps.")))

# %% [markdown]
# ## The baselines of chapter 01, on the same folds
#
# A paired DeLong test compares two models on the **same patients**; with
# cross-validation that means the same folds, which the seed, the patients and their
# labels fix (`StratifiedGroupKFold` in {py:func}`stroke_lib.train.patient_folds`). When chapter
# 01 has already run with the same dataset, cohort, profile, seed, folds and epochs, its
# out-of-fold predictions are read from its run record, after checking that they cover
# the same patients in the same order with the same labels; otherwise the baselines are
# trained here with chapter 01's settings.

# %%
config = TrainConfig(epochs=baseline_epochs, patience=max(3, baseline_epochs // 4), lr=float(s["lr"]),
                     batch_size=int(s["batch_size"]), device=run.device, seed=seed, progress=False,
                     augment=augmentation(spatial_size=s["input_shape"]), cosine=True)
x_int, y_int = data.x[internal], data.y[internal]
g_int = data.rows.patient_id.to_numpy()[internal]
groups_ext = data.rows.patient_id.to_numpy()[external]
baselines = {"DenseNet": "densenet", "ResNet10": "resnet10"}
ch01 = data_dir() / "runs" / run_name("01_evaluation", dataset, run.profile, seed)  # the book's run of chapter 01


def chapter_01_scores() -> tuple[dict, dict, dict, str]:
    """Chapter 01's out-of-fold and external scores, or why they cannot be used."""
    if nihss_cutoff != NIHSS_MINOR_CUTOFF:
        return {}, {}, {}, f"chapter 01 uses NIHSS ≤ {NIHSS_MINOR_CUTOFF}, this run ≤ {nihss_cutoff}"
    if not (ch01 / "results.json").exists() or not (ch01 / "predictions.csv").exists():
        return {}, {}, {}, "chapter 01 has not run with this dataset, profile and seed"
    record = json.loads((ch01 / "results.json").read_text())
    want = {"dataset": dataset, "n_subjects": spec.n_subjects, "in_plane": spec.in_plane,
            "epochs": baseline_epochs, "folds": folds}
    differ = [k for k, v in want.items() if record["parameters"].get(k) != v]
    differ += [k for k in ("seed", "profile", "device") if record[k] != getattr(run, k)]
    if differ:
        return {}, {}, {}, f"chapter 01 ran with another {', '.join(differ)}"
    pred = pd.read_csv(ch01 / "predictions.csv", dtype={"patient_id": str, "scan": str})
    cv_scores, ext_scores = {}, {}
    for label in baselines:
        for ev, ids, y, store in [(ev_int, g_int, y_int, cv_scores)] + (
                [(ev_ext, groups_ext, data.y[external], ext_scores)] if has_external else []):
            p = pred[(pred.model == label) & (pred.evaluation == ev)]
            if len(p) != len(ids) or (p.patient_id.to_numpy() != ids).any() or (p.label.to_numpy() != y).any():
                return {}, {}, {}, f"chapter 01's {label} predictions ({ev}) are for other patients or labels"
            store[label] = p.score.to_numpy(float)
    return cv_scores, ext_scores, record["timings_s"], ""


cv_base, ext_base, timings, why_not = chapter_01_scores()
if why_not:
    for label, name in baselines.items():
        make = lambda name=name: baseline(name, in_channels=in_channels, slim=slim)
        t0 = time.perf_counter()
        cv_base[label] = cross_validate(make, x_int, y_int, g_int, folds, config)[0]
        if has_external:
            ext_base[label] = train_and_test(make, x_int, y_int, g_int, data.x[external], config)["score_test"]
        timings[label] = time.perf_counter() - t0
    baseline_source = f"trained in this chapter ({why_not})"
else:
    baseline_source = f"read from chapter 01's run record (`runs/{ch01.name}`), checked patient by patient"
display(Markdown(f"The baselines' predictions were **{baseline_source}**."))

# %% [markdown]
# ## TRACT-NET: cross-validation and external evaluation
#
# The one training loop of the book ({py:func}`stroke_lib.train.fit`, chapter 01) with the
# baselines' optimiser, learning rate, augmentation, class weighting and early stopping;
# the folds and the seeds of every fold are theirs. One setting differs in the smoke
# profile (parameters above): TRACT-NET and its ablations train for fewer epochs than the
# baselines, so that the chapter, with its ablations, runs in minutes on two CPU cores;
# early stopping (patience: a quarter of the baselines' epochs, a third of TRACT-NET's) ends
# most folds before either limit.
# `-p lr` trains TRACT-NET at another learning rate than the baselines. Where a fold's
# loss spikes for an epoch in the curves below (batches of 8 with batch normalisation),
# early stopping keeps the epoch with the lowest validation loss.

# %%
tract_config = TrainConfig(**{**config.__dict__, "epochs": epochs, "patience": max(3, epochs // 3), "lr": lr})
make_tract = lambda **switches: (lambda: tractnet(in_channels, slim=slim, **switches))  # noqa: E731
t0 = time.perf_counter()
cv_tract = cross_validate(make_tract(), x_int, y_int, g_int, folds, tract_config)
timings["TRACT-NET, cross-validation"] = time.perf_counter() - t0
if has_external:
    t0 = time.perf_counter()
    ext_tract = train_and_test(make_tract(), x_int, y_int, g_int, data.x[external], tract_config)
    timings["TRACT-NET, external"] = time.perf_counter() - t0
trained_tract = cv_tract[1][0]["fit"].model
backend = ", ".join(mamba_backends(trained_tract)) or "none"
n_params = {"TRACT-NET": sum(p.numel() for p in trained_tract.parameters())}
n_params |= {label: sum(p.numel() for p in baseline(name, in_channels=in_channels, slim=slim).parameters())
             for label, name in baselines.items()}
glue("backend", backend, display=False)
glue_figure("fig_training", training_curves(
    {f"TRACT-NET fold {k + 1}": f["fit"].history for k, f in enumerate(cv_tract[1])},
    f"TRACT-NET training curves ({tag} cohort)"))

# %% [markdown]
# ```{glue:figure} fig_training
# :name: fig-02-training
# :alt: Training and validation loss of TRACT-NET per epoch in each cross-validation fold.
#
# TRACT-NET's training (solid) and validation (dashed) loss per epoch in each fold.
# Early stopping keeps the epoch with the lowest validation loss.
# ```
#
# The Mamba blocks ran on the **{glue:text}`backend`** backend (mamba-ssm's CUDA kernel
# where it is installed on a GPU, else the pure-PyTorch selective scan with the same
# parameters; {py:mod}`stroke_lib.models.mamba`).
#
# ## A baseline without deep learning: the lesion volume
#
# NIHSS grows with the volume of the infarct and with where it lies (motor pathways,
# language cortex, brainstem). A deep model earns its place only if it beats what two
# thresholds and a logistic regression can do. {py:mod}`stroke_lib.lesion_features` measures the
# acute lesion in each patient's original DWI and ADC, **without any label**: voxels
# inside the brain whose ADC is below {glue:text}`adc_max` x 10⁻⁶ mm²/s
# {cite:p}`purushotham2015` and whose DWI is above {glue:text}`dwi_ratio` times the brain's
# median, without groups under {glue:text}`min_ml` ml. From the mask come its volume (ml),
# its share in the left hemisphere and the position of its centre (mm from the brain's
# centre). Two logistic regressions (scikit-learn) use the **same folds** as the networks:
# the log volume alone, and the log volume with side and location (the log volume times
# the left share, for language, and the centre's three coordinates).

# %%
glue("adc_max", f"{ADC_CORE_MAX:.0f}", display=False)
glue("dwi_ratio", f"{DWI_RATIO_MIN}", display=False)
glue("min_ml", f"{MIN_COMPONENT_ML}", display=False)
t0 = time.perf_counter()
feats = lesion_features(data.rows)
log_ml = np.log1p(feats.lesion_ml.to_numpy())
designs = {"lesion volume": log_ml[:, None],
           "lesion volume, side and location": np.column_stack(
               [log_ml, log_ml * feats.left_share, feats.dx_mm, feats.dy_mm, feats.dz_mm])}
splits = patient_folds(y_int, g_int, folds, seed)
cv_lesion, ext_lesion = {}, {}
for label, design in designs.items():
    oof = np.full(len(internal), np.nan)
    for tr, te in splits:
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(design[internal][tr], y_int[tr])
        oof[te] = model.predict_proba(design[internal][te])[:, 1]
    cv_lesion[label] = oof
    if has_external:
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(design[internal], y_int)
        ext_lesion[label] = model.predict_proba(design[external])[:, 1]
timings["lesion volume models (measuring included)"] = time.perf_counter() - t0
true_ml = data.rows.lesion_volume_ml.to_numpy(float) if "lesion_volume_ml" in data.rows else None
glue_figure("fig_volume", lesion_volumes(feats.lesion_ml.to_numpy(), data.rows.nihss.to_numpy(float), nihss_cutoff,
                                         data.rows.site.astype(str).to_numpy(),
                                         f"Acute lesion volume measured by thresholds ({tag})", true_ml))
if true_ml is not None:
    rho = pd.Series(true_ml).corr(feats.lesion_ml.reset_index(drop=True), method="spearman")
    display(Markdown(f"Spearman correlation of the measured with the true volume: {rho:.2f}."))
else:
    display(Markdown(f"On {dataset} the true lesion volume is not known; the measurement is used as it comes."))

# %% [markdown]
# ```{glue:figure} fig_volume
# :name: fig-02-volume
# :alt: Scatter plots of the lesion volume measured by thresholds: against NIHSS, where larger lesions have higher scores, and against the true lesion volume, close to the identity line.
#
# Left: NIHSS against the acute lesion volume measured by the ADC and DWI thresholds, one
# point per patient, the dashed line at the cut-off between minor and non-minor stroke.
# Right (embedded cohort only, where the truth is known): measured against the
# generator's true volume, which is measured in template space, so a patient's head size
# moves a point off the identity line; the correlation is given above the figure.
# ```

# %% [markdown]
# ## Results: every model on the same patients
#
# Each metric at the threshold 0.5 with its 95% interval: the patient bootstrap
# ({glue:text}`n_boot` replicates), AUC included; a Wilson interval, marked *(Wilson)*, for
# a proportion at 0 or 1, with fewer than ten patients, or whose bootstrap has no spread;
# no interval for a metric whose bootstrap has no spread because the model calls every
# patient one class. The row `auc_delong` is DeLong's interval for the AUC, clustered by
# patient. Positive-class metrics come first, the class-weighted ones beside them.

# %%
glue("n_boot", f"{n_bootstrap:,}", display=False)
cv_scores = {"TRACT-NET": cv_tract[0], **cv_base, **{f"{k} (logistic regression)": v for k, v in cv_lesion.items()}}
ext_scores = {}
if has_external:
    ext_scores = {"TRACT-NET": ext_tract["score_test"], **ext_base,
                  **{f"{k} (logistic regression)": v for k, v in ext_lesion.items()}}
tables, preds = {}, []
scan_ids = data.rows.scan_id.to_numpy()
for label, score in cv_scores.items():
    tables[f"{label}, {ev_int}"] = metrics_table(y_int, score, g_int, n_boot=n_bootstrap, seed=seed)
    preds.append(predictions_table(g_int, scan_ids[internal], y_int, score, model=label, evaluation=ev_int))
for label, score in ext_scores.items():
    tables[f"{label}, {ev_ext}"] = metrics_table(data.y[external], score, groups_ext, n_boot=n_bootstrap,
                                                 seed=seed)
    preds.append(predictions_table(groups_ext, scan_ids[external], data.y[external], score, model=label,
                                   evaluation=ev_ext))
summary = pd.concat({k: interval_column(v) for k, v in tables.items()}, axis=1)
summary.columns.name = f"{tag} cohort: estimate [95% CI]"
summary

# %% [markdown]
# The AUCs side by side, each against TRACT-NET by the paired DeLong test on the same
# patients (clustered by patient {cite:p}`obuchowski1997`), with the oracle ceiling of
# this task and population: the AUC of each patient's true latent NIHSS risk, which no
# model can pass, and the **image-only ceiling**: the AUC of the part of that risk which
# the lesion itself sets (its volume and where it lies), the best a model reading the
# image could hope for (chapter 01 explains both).

# %%
def p_text(p: float) -> str:
    """A p-value as the page prints it."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


evaluations = {ev_int: (y_int, g_int, cv_scores)}
if has_external:
    evaluations[ev_ext] = (data.y[external], groups_ext, ext_scores)
comparison, tests = [], {}
for ev, (y, g, scores) in evaluations.items():
    for label, score in scores.items():
        auc = tables[f"{label}, {ev}"].loc["auc"]
        row = {"evaluation": ev, "model": label, f"AUC [95% CI] ({tag})": format_interval(auc.estimate, auc.lower,
                                                                                         auc.upper)}
        if label != "TRACT-NET":
            tests[label, ev] = delong_test(y, scores["TRACT-NET"], score, groups=g)
            row["TRACT-NET minus model"] = f"{tests[label, ev]['difference']:+.3f}"
            row["paired DeLong p"] = p_text(tests[label, ev]["p"]).lstrip("= ")
        comparison.append(row)
comparison = pd.DataFrame(comparison).set_index(["evaluation", "model"]).fillna("-")
comparison.columns.name = f"{tag} cohort"
display(comparison)
ceilings = ceiling_beside_auc(task.ceiling_evaluations(), tables,
                              ["TRACT-NET", "lesion volume (logistic regression)"], n_boot=n_bootstrap, seed=seed)
ceilings.columns.name = f"{tag} cohort"
ceilings

# %%
glue_metrics("tract_cv", tables[f"TRACT-NET, {ev_int}"], ["auc"])
glue_metrics("volume_cv", tables[f"lesion volume (logistic regression), {ev_int}"], ["auc"])
best_base = max(baselines, key=lambda m: tables[f"{m}, {ev_int}"].loc["auc"].estimate)
glue("best_base", best_base, display=False)
glue_metrics("base_cv", tables[f"{best_base}, {ev_int}"], ["auc"])
glue("ceiling_int", ceilings.loc[ev_int, "oracle ceiling"], display=False)
tract_auc = tables[f"TRACT-NET, {ev_int}"].loc["auc"]
glue("tract_vs_chance", "its whole interval lies above 0.5, so it learned something" if tract_auc.lower > 0.5 else
     "its interval includes 0.5, so this run does not show that it learned anything"
     + (f" (the smoke profile trains it for {epochs} epochs only)" if slim else ""), display=False)
if has_external:
    ext_auc = tables[f"TRACT-NET, {ev_ext}"].loc["auc"]
    glue("tract_ext", f"On the external site it is {format_interval(ext_auc.estimate, ext_auc.lower, ext_auc.upper)}: "
         + ("its whole interval lies above 0.5." if ext_auc.lower > 0.5 else
            "its interval includes 0.5, so this run does not show that it carries to another site."),
         display=False)
else:
    glue("tract_ext", "There is no external site to evaluate it on.", display=False)


def verdict(label: str) -> str:
    """TRACT-NET against one model in words, from the paired DeLong tests."""
    parts = []
    for ev in evaluations:
        t = tests[label, ev]
        if t["p"] < 0.05:
            word = "TRACT-NET beats it" if t["difference"] > 0 else "TRACT-NET is beaten by it"
        else:
            word = "TRACT-NET does not differ significantly from it"
        parts.append(f"{ev}: {word} (AUC difference {t['difference']:+.3f}, paired DeLong p {p_text(t['p'])})")
    return f"- **{label}**: " + "; ".join(parts) + "."


glue("verdicts", Markdown("\n".join(verdict(m) for m in [
    "lesion volume (logistic regression)", "lesion volume, side and location (logistic regression)",
    *baselines])), display=False)
curves = {f"{m}, {ev_int}": (y_int, cv_scores[m], g_int)
          for m in ["TRACT-NET", best_base, "lesion volume (logistic regression)"]}
if has_external:
    curves |= {f"{m}, {ev_ext}": (data.y[external], ext_scores[m], groups_ext)
               for m in ["TRACT-NET", "lesion volume (logistic regression)"]}
glue_figure("fig_roc", roc_curves(curves, f"ROC, minor vs non-minor ({tag} cohort)",
                                  operating_points=published_roc_points("tractnet"), n_boot=n_bootstrap,
                                  seed=seed))

# %% [markdown]
# ```{glue:figure} fig_roc
# :name: fig-02-roc
# :alt: ROC curves with shaded 95% bands of TRACT-NET, the better chapter-01 baseline and the lesion-volume logistic regression, above the diagonal of chance.
#
# ROC curves of TRACT-NET, the better baseline of chapter 01 and the lesion-volume
# logistic regression, cross-validated on the internal site and, where there is one,
# on the external site. Each band is the pointwise 95% interval over bootstrap replicates
# that resample patients (the legend gives their number). TRACT-NET's published numbers
# are not drawn: its "sensitivity" is a class-weighted recall, so its (sensitivity,
# specificity) pairs are not points on these axes.
# ```
#
# TRACT-NET's cross-validated AUC is {glue:text}`tract_cv_auc`: {glue:text}`tract_vs_chance`.
# {glue:text}`tract_ext`
# Beside it stand {glue:text}`base_cv_auc` for the better baseline ({glue:text}`best_base`),
# {glue:text}`volume_cv_auc` for the measured lesion volume alone, and an oracle ceiling
# of {glue:text}`ceiling_int` on the same patients. Does the deep model beat the models
# it is set against? The paired DeLong tests, evaluation by evaluation:
#
# ```{glue:md} verdicts
# :format: myst
# ```
#
# A difference that is not significant is not evidence of no difference: with this many
# patients the intervals are wide.
#
# ### Thresholds, confusion matrices and calibration
#
# Youden's threshold is chosen on each fold's validation patients and applied to its
# test fold; 0.5 beside it.

# %%
pred = np.zeros_like(y_int)
for f in cv_tract[1]:
    pred[f["test_index"]] = (cv_tract[0][f["test_index"]] >= youden_threshold(f["y_val"], f["score_val"])).astype(int)
items = {"TRACT-NET CV, Youden (val)": (y_int, pred), "TRACT-NET CV, 0.5": (y_int, (cv_tract[0] >= 0.5).astype(int))}
if has_external:
    thr = youden_threshold(ext_tract["y_val"], ext_tract["score_val"])
    items["TRACT-NET external, Youden (val)"] = (data.y[external], (ext_tract["score_test"] >= thr).astype(int))
glue_figure("fig_confusion", confusion_matrices(items, ["minor", "non-minor"], f"TRACT-NET confusion matrices ({tag})"))
cal = {m: calibration(y_int, cv_scores[m]) for m in ["TRACT-NET", "lesion volume (logistic regression)"]}
brier = pd.DataFrame({m: {"Brier score": c["brier"], "Brier score of the prevalence": c["brier_reference"],
                          "Brier skill score": c["brier_skill"]} for m, c in cal.items()}).T.round(3)
brier.columns.name = f"{tag}, cross-validation"
display(brier)
skill = cal["TRACT-NET"]["brier_skill"]
display(Markdown(f"TRACT-NET's Brier skill score is {skill:.3f}: " + (
    "its probabilities are no better than giving every patient the prevalence." if skill <= 0 else
    "its probabilities beat giving every patient the prevalence.")))
glue_figure("fig_reliability", reliability({m: (c["predicted"], c["observed"]) for m, c in cal.items()},
                                           f"Reliability, site {internal_site} CV ({tag})"))

# %% [markdown]
# ```{glue:figure} fig_confusion
# :name: fig-02-confusion
# :alt: Confusion matrices of TRACT-NET, minor against non-minor, at the validation Youden threshold and at 0.5.
#
# TRACT-NET's confusion matrices: cross-validated at the Youden threshold chosen on
# validation patients and at 0.5, and on the external site (where there is one) at the
# threshold chosen on the validation patients of the internal training data.
# ```
#
# ```{glue:figure} fig_reliability
# :name: fig-02-reliability
# :alt: Reliability curves of TRACT-NET and the lesion-volume logistic regression against the diagonal of perfect calibration.
#
# Observed rate of non-minor stroke against the mean predicted probability in five bins
# of equal size, cross-validated; the diagonal is perfect calibration. The networks are
# trained with a class-weighted loss, so their probabilities are not calibrated to the
# prevalence by construction; the Brier skill score above says how far that costs.
# ```
#
# ## Ablations: what each part is worth
#
# Each variant switches off one part ({py:mod}`stroke_lib.models.tractnet` switches) and is
# trained with the same settings, folds and seeds as the full model; the paired DeLong
# test compares it with the full model on the same test patients.

# %%
variants = {"without coordinate attention": {"coord_attention": False},
            "without efficient attention": {"efficient_attention": False},
            "without the mixture (plain residual blocks)": {"coord_attention": False, "efficient_attention": False},
            "without Mamba (identity bottleneck)": {"mamba": False},
            "Mamba with one scan direction (forward)": {"scan": "forward"}}
SMOKE_VARIANTS = ["without coordinate attention", "without efficient attention", "without Mamba (identity bottleneck)"]
if slim:  # the three parts the abstract names, to keep the smoke profile within its minutes
    skipped_variants = [v for v in variants if v not in SMOKE_VARIANTS]
    variants = {v: variants[v] for v in SMOKE_VARIANTS}
    display(Markdown("**Two variants skipped in the smoke profile** (" + "; ".join(skipped_variants)
                     + "): the full profile trains all five."))
ab_index = np.concatenate([te for _, te in splits[:ablation_folds]])
ab_y, ab_g = y_int[ab_index], g_int[ab_index]
ab_scores = {"TRACT-NET (full)": cv_tract[0][ab_index]}
for label, switches in variants.items():
    t0 = time.perf_counter()
    scores = []
    for k, (tr, te) in enumerate(splits[:ablation_folds]):  # fold k trained as cross_validate does
        cfg = TrainConfig(**{**tract_config.__dict__, "seed": seed + k})
        scores.append(train_and_test(make_tract(**switches), x_int[tr], y_int[tr], g_int[tr], x_int[te], cfg)["score_test"])
    ab_scores[label] = np.concatenate(scores)
    timings[f"ablation: {label}"] = time.perf_counter() - t0
    n_params[f"ablation: {label}"] = sum(p.numel() for p in make_tract(**switches)().parameters())
ablations, ab_auc, ablation_tests = [], {}, {}
for label, score in ab_scores.items():
    t = ab_auc[label] = metrics_table(ab_y, score, ab_g, n_boot=n_bootstrap, seed=seed).loc["auc"]
    row = {"variant": label, f"AUC [95% CI] ({tag})": format_interval(t.estimate, t.lower, t.upper),
           "parameters": f"{n_params['TRACT-NET' if label == 'TRACT-NET (full)' else f'ablation: {label}']:,}"}
    if label != "TRACT-NET (full)":
        d = ablation_tests[label] = delong_test(ab_y, ab_scores["TRACT-NET (full)"], score, groups=ab_g)
        row |= {"full minus variant": f"{d['difference']:+.3f}", "paired DeLong p": p_text(d["p"]).lstrip("= ")}
    ablations.append(row)
ablations = pd.DataFrame(ablations).set_index("variant").fillna("-")
ablations.columns.name = (f"{tag}: test patients of the first {ablation_folds} of {folds} folds" if ablation_folds < folds
                          else f"{tag}: {folds}-fold cross-validation")
where = (f"on the test patients of the first {ablation_folds} of the {folds} folds only (one patient-level "
         f"split, {len(np.unique(ab_g))} patients), to keep the smoke profile within minutes; the full "
         "model's row is its score on the same patients" if ablation_folds < folds
         else f"with the full {folds}-fold cross-validation")
caveat = ("" if ab_auc["TRACT-NET (full)"].lower > 0.5 else
          " On these patients the full model's own AUC interval includes 0.5 (or lies below it), so the "
          "differences say how the variants score against a model at chance, not what each part is worth; "
          "`-p ablation_folds 3`, or the full profile, trains them on every fold.")
display(Markdown(f"The variants were trained and tested **{where}**.{caveat}"))
ablations

# %% [markdown]
# ## Cut-offs of 4 and 5
#
# The paper does not say where it put the line between minor and non-minor; NIHSS ≤ 4
# and ≤ 5 are also in use. The full profile repeats TRACT-NET's cross-validation and the
# lesion-volume model at those cut-offs.

# %%
other_cutoffs = [c for c in (3, 4, 5) if c != nihss_cutoff]
if slim:
    display(Markdown(f"**Other cut-offs skipped**: the smoke profile reports NIHSS ≤ {nihss_cutoff} only "
                     f"(run `-p nihss_cutoff {other_cutoffs[0]}`, or the full profile, for the others)."))
else:
    nihss_int = data.rows.nihss.to_numpy(float)[internal]
    cut_rows = []
    for c in other_cutoffs:
        y_c = (nihss_int > c).astype(int)
        t0 = time.perf_counter()
        oof_c = cross_validate(make_tract(), x_int, y_c, g_int, folds, tract_config)[0]
        timings[f"TRACT-NET, cross-validation, NIHSS cut-off {c}"] = time.perf_counter() - t0
        vol_c = np.full(len(y_c), np.nan)
        for tr, te in patient_folds(y_c, g_int, folds, seed):
            volume_model = make_pipeline(StandardScaler(), LogisticRegression()).fit(log_ml[internal][tr, None],
                                                                                     y_c[tr])
            vol_c[te] = volume_model.predict_proba(log_ml[internal][te, None])[:, 1]
        row = {"NIHSS cut-off (minor: at or below)": c, "non-minor patients": int(y_c.sum())}
        for label, score in [("TRACT-NET", oof_c), ("lesion volume", vol_c)]:
            t = metrics_table(y_c, score, g_int, n_boot=n_bootstrap, seed=seed).loc["auc"]
            row[f"{label} AUC [95% CI]"] = format_interval(t.estimate, t.lower, t.upper)
        d = delong_test(y_c, oof_c, vol_c, groups=g_int)
        row["TRACT-NET minus lesion volume, paired DeLong p"] = f"{d['difference']:+.3f}, p {p_text(d['p'])}"
        cut_rows.append(row)
    cut_table = pd.DataFrame(cut_rows).set_index("NIHSS cut-off (minor: at or below)")
    cut_table.columns.name = f"{tag}, {ev_int}"
    display(cut_table)

# %% [markdown]
# ## Grad-CAM of TRACT-NET, with its controls
#
# The paper shows Grad-CAM maps on "clinically relevant DWI regions". Chapter 01 explains
# why a map alone shows little; here TRACT-NET's maps (Grad-CAM
# {cite:p}`selvaraju2017gradcam` and LayerCAM {cite:p}`jiang2021layercam` at stage 3, the
# deepest stage that still resolves a lesion) are set against the same network with
# random weights, and against randomising its top layers {cite:p}`adebayo2018sanity`.
# The randomisation check passes when the whole interval of the mean Spearman
# correlation lies below {glue:text}`rand_rule`.

# %%
glue("rand_rule", f"{RANDOMISATION_RULE}", display=False)
if has_external:
    x_sal, sal_idx, sal_model = data.x[external], external, ext_tract["fit"].model
    sal_where = "the external site's patients, scored by the TRACT-NET trained on the internal site"
else:  # one site: the first fold's model on its own test patients
    sal_idx = internal[cv_tract[1][0]["test_index"]]
    x_sal, sal_model = data.x[sal_idx], cv_tract[1][0]["fit"].model
    sal_where = "the first fold's test patients, scored by that fold's TRACT-NET"
masks_sal, brains_sal = data.masks[sal_idx], data.brains[sal_idx]
groups_sal = data.rows.patient_id.to_numpy()[sal_idx]
t0 = time.perf_counter()
report = saliency_checks(sal_model, x_sal, masks_sal, brains_sal, GRADCAM_LAYERS["tractnet"],
                         TOP_LAYERS["tractnet"], groups=groups_sal, seed=seed, n_boot=n_bootstrap,
                         localise=has_masks)
timings["saliency checks"] = time.perf_counter() - t0
display(Markdown(f"Maps are computed on {sal_where}."))
loc_view, verdict_view, sentences = saliency_views({"TRACT-NET": report}, tag)
if loc_view is not None:
    display(loc_view)
display(verdict_view)
glue("saliency_verdicts", Markdown(sentences), display=False)

# %% [markdown]
# In words, from the tables above:
#
# ```{glue:md} saliency_verdicts
# :format: myst
# ```

# %%
chosen = overlay_cases(masks_sal)
glue_figure("fig_saliency", gradcam_overlays(
    [(f"{why}\n{groups_sal[i]}, {method}", x_sal[i, 0].numpy(), report.maps[method, "trained"][i], masks_sal[i])
     for why, i in chosen for method in CAM_METHODS],
    f"TRACT-NET on DWI: Grad-CAM and LayerCAM ({tag})"))

# %% [markdown]
# ```{glue:figure} fig_saliency
# :name: fig-02-saliency
# :alt: Grad-CAM and LayerCAM of TRACT-NET over four axial DWI slices of two patients, the acute lesion outlined in white.
#
# Grad-CAM and LayerCAM of TRACT-NET over four axial slices around the lesion of two
# patients chosen by lesion size (where masks exist): the **largest** lesion and the
# **median** one (a typical case); each map scaled to [0, 1] per patient. Whether the
# maps mean anything is in the tables above, not in this figure.
# ```
#
# ## Our numbers beside TRACT-NET's
#
# Each published number beside our TRACT-NET's metric **of the same definition**
# (TRACT-NET's "sensitivity" beside our weighted recall, nothing beside its
# "specificity"; where the paper does not say how a metric was averaged, both of our
# readings). Our positive-class sensitivity and specificity have rows of their own,
# marked *not comparable*. The paper's numbers are on its real
# cohorts; ours are {glue:text}`tag`, on a reimplementation from the abstract, a smaller
# network in the smoke profile, and other patients.

# %%
glue("tag", tag, display=False)
paper_vs_study("tractnet", "AMC (3-fold CV)", tables[f"TRACT-NET, {ev_int}"],
               f"TRACT-NET, {tag} {ev_int} [95% CI]")

# %%
if has_external:
    display(paper_vs_study("tractnet", "SOOP (external)", tables[f"TRACT-NET, {ev_ext}"],
                           f"TRACT-NET, {tag} {ev_ext} [95% CI]"))
else:
    display(Markdown("The paper's external SOOP numbers have no counterpart in this run: it has no "
                     "external site."))

# %% [markdown]
# ## Size, time and the run record
#
# Parameters of each network as built in this run, and the wall-clock time of each
# training (for the baselines, as recorded where they were trained).

# %%
cost = pd.DataFrame({"parameters": pd.Series(n_params).map("{:,}".format),
                     "training time (s)": pd.Series(timings).map("{:.1f}".format)}).fillna("-")
cost.columns.name = f"{run.device}, {run.profile} profile"
display(cost)
predictions = pd.concat(preds, ignore_index=True)
out_dir.mkdir(parents=True, exist_ok=True)
predictions.to_csv(out_dir / "predictions.csv", index=False)
saliency = {}
for method, row in report.verdicts.iterrows():
    saliency[f"TRACT-NET {method}"] = row.to_dict()
    if has_masks:
        for network in ("trained", "random weights"):
            saliency[f"TRACT-NET {method}"][network] = report.localisation.loc[(method, network)].to_dict()
write_record(out_dir / "results.json", run,
             {"dataset": dataset, "n_subjects": spec.n_subjects, "in_plane": spec.in_plane, "epochs": epochs,
              "baseline_epochs": baseline_epochs, "lr": lr, "baseline_lr": s["lr"], "folds": folds, "ablation_folds": ablation_folds,
              "n_bootstrap": n_bootstrap, "nihss_cutoff": nihss_cutoff, "input_channels": ["dwi"]},
             tables, timings, out_dir / "predictions.csv",
             {"parameter_counts": n_params, "mamba_backend": backend, "baselines": baseline_source,
              "paired_delong_vs_tractnet": {f"{m}, {ev}": t for (m, ev), t in tests.items()},
              "ablations": ablations.to_dict(orient="index"), "ablation_delong": ablation_tests, "saliency": saliency,
              "ceiling": ceilings.to_dict(orient="index"),
              "lesion_thresholds": {"adc_max_1e-6_mm2_s": ADC_CORE_MAX, "dwi_ratio_min": DWI_RATIO_MIN,
                                    "min_component_ml": MIN_COMPONENT_ML}})
display(Markdown(f"Mamba backend: **{backend}**. The run record (`results.json`) holds these, every "
                 "metric with its interval, the paired tests and the predictions of every model."))

# %% [markdown]
# ## Try it yourself
#
# - `-p epochs 40`: train TRACT-NET and its ablations as long as the baselines.
# - `-p lr 0.001`: TRACT-NET at a third of the baselines' smoke learning rate (compare its
#   training curves and AUC with this run's).
# - `-p ablation_folds 3`: the ablations with the whole cross-validation, not one split.
# - `-p nihss_cutoff 4` (or 5): another definition of minor stroke; the baselines are
#   then trained here, since chapter 01 uses 3.
# - `-p seed 1`: another cohort, other folds, other initial weights.
# - `-p profile full` on a GPU: the full TRACT-NET at 128 x 128 x 64, mamba-ssm's kernel
#   when the `gpu` extra is installed, the ablations cross-validated and the cut-offs 4
#   and 5 reported.
# - `-p dataset soop`: the real SOOP cohort from `<data directory>/soop` (`-p data_root`
#   for another folder): one site and no lesion masks, so the chapter cross-validates,
#   skips the external evaluation and the localisation, and keeps the randomisation check.
#
# Reporting checklist items this chapter covers: the model described with every
# interpretation of the source stated, patient-level splits, the same folds and seeds for
# every compared model with paired tests, external validation, intervals on every metric,
# a threshold chosen without test data, calibration, the ceiling set by label noise, a
# simple non-deep-learning baseline, ablations, parameter counts and training time,
# saliency maps with controls.
