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
# # How every chapter trains, evaluates and explains
#
# **What you will learn**
# - the one training loop of the book, and patient-level cross-validation with a guard
#   against leaks;
# - every metric with a 95% confidence interval that resamples patients, and DeLong's
#   interval and test for AUC;
# - why a class-weighted recall always equals accuracy (and what TRACT-NET reported);
# - how to check a Grad-CAM map: does it point at the lesion, and does it change when the
#   model's weights are randomised?
#
# The task is the one of paper 000 (TRACT-NET): **minor vs non-minor ischaemic stroke
# (NIHSS ≤ 3 vs > 3) from DWI**, on the embedded cohort. Two MONAI baselines, a DenseNet
# and a ResNet, are trained with 3-fold patient-level cross-validation on site A and
# evaluated on site B. All numbers here are **synthetic**.

# %% tags=["parameters"]
profile = "auto"  # "smoke" | "full" | "auto" (full on CUDA, smoke otherwise)
dataset = "synthetic"
data_root = ""
device = "auto"
seed = 0
epochs = 0  # 0: the profile's default
folds = 0  # 0: the profile's default
n_bootstrap = 0  # 0: the profile's default (2,000 in full)

# %%
import time

import numpy as np
import pandas as pd
from myst_nb import glue

from stroke_lib.book import show_parameters
from stroke_lib.data import CohortSpec, load_dataset
from stroke_lib.data.synthetic.labels import NIHSS_MINOR_CUTOFF
from stroke_lib.datasets import augmentation, dwi_dataset
from stroke_lib.explain import CAM_METHODS, saliency_checks
from stroke_lib.metrics import binary_metrics, calibration, delong_test, metrics_table, youden_threshold
from stroke_lib.models import GRADCAM_LAYERS, TOP_LAYERS, baseline
from stroke_lib.paths import data_dir
from stroke_lib.plots import confusion_matrices, gradcam_overlays, reliability, roc_curves, training_curves
from stroke_lib.report import glue_metrics, model_card, paper_vs_study, write_record
from stroke_lib.train import TrainConfig, cross_validate, predictions_table, train_and_test
from stroke_lib.runtime import start_run

run = start_run(profile, device, seed)
s = run.settings
epochs = epochs or int(s["epochs"])
folds = folds or int(s["folds"])
n_bootstrap = n_bootstrap or int(s["bootstrap"])
slim = run.profile == "smoke"
spec = CohortSpec(n_subjects=int(s["n_subjects"]), in_plane=int(s["in_plane"]), seed=seed)
show_parameters(profile=run.profile, dataset=dataset, device=run.device, seed=seed, epochs=epochs,
                folds=folds, n_bootstrap=n_bootstrap, input_shape=s["input_shape"],
                models="slim DenseNet, slim ResNet10" if slim else "DenseNet121, ResNet10")
out_dir = data_dir() / "runs" / f"01_evaluation-{run.profile}-seed{seed}"

# %% [markdown]
# ## Data: ischaemic stroke patients' DWI
#
# Ischaemic stroke patients of the cohort, one DWI b1000 trace each, as in TRACT-NET
# (its cohorts are ischaemic stroke patients, and it reads DWI alone). The positive
# class is **non-minor** stroke (NIHSS > 3). Each volume is standardised within the
# brain by its median and interquartile range, and resized to the profile's input shape
# once, before training.
#
# Why not the usual z-score? A large bright lesion raises the brain's mean and standard
# deviation, so after a z-score all normal tissue is darker in a patient with a large
# infarct. That global dimming tracks lesion volume, and so NIHSS: a network can score
# well from it without looking at the lesion. The median and IQR barely move.

# %%
cohort = load_dataset(dataset, data_root or None, spec)
rows = cohort.table[(cohort.table.modality == "DWI")]
if "stroke_type" in rows:
    rows = rows[rows.stroke_type == "ischaemic"]
y_all = (rows.nihss > NIHSS_MINOR_CUTOFF).astype(int).to_numpy()
data = dwi_dataset(rows, y_all, s["input_shape"], channels=("dwi",))
internal = np.flatnonzero(data.rows.site.to_numpy() == "A")
external = np.flatnonzero(data.rows.site.to_numpy() != "A")
counts = data.rows.assign(label=np.where(data.y == 1, "non-minor", "minor")).groupby(
    ["site", "label"]).size().unstack()
counts

# %% [markdown]
# ## Training and cross-validation
#
# `stroke_lib.train.fit` is the one training loop: AdamW with a cosine learning-rate
# schedule, BCE loss with the positive class weighted by the class ratio, gradient
# clipping, bf16 autocast on CUDA, early stopping on validation loss with the best epoch
# kept, a checkpoint every epoch that a killed run resumes from. Every training sample is
# augmented each time it is drawn (MONAI random affine, intensity scale and noise, seeded
# and checkpointed with the rest): without it, a network this size memorises a hundred
# patients within five epochs. Folds come from scikit-learn's `StratifiedGroupKFold` on
# patient IDs, and every split is checked: a patient on both sides raises. Inside each
# training fold a fifth of the patients is held out for early stopping and for choosing
# the Youden threshold; the test fold is never seen before it is scored.

# %%
config = TrainConfig(epochs=epochs, patience=max(3, epochs // 3), lr=float(s["lr"]),
                     batch_size=int(s["batch_size"]), device=run.device, seed=seed, progress=False,
                     augment=augmentation(), cosine=True)
x_int, y_int = data.x[internal], data.y[internal]
g_int = data.rows.patient_id.to_numpy()[internal]
models = {"DenseNet": "densenet", "ResNet10": "resnet10"}
cv, ext, timings = {}, {}, {}
for label, name in models.items():
    make = lambda name=name: baseline(name, in_channels=data.x.shape[1], slim=slim)
    t0 = time.perf_counter()
    cv[label] = cross_validate(make, x_int, y_int, g_int, folds, config)
    ext[label] = train_and_test(make, x_int, y_int, g_int, data.x[external], config)
    timings[label] = time.perf_counter() - t0
fig = training_curves({f"{lab} fold {k + 1}": f["fit"].history for lab in cv
                       for k, f in enumerate(cv[lab][1])}, "Training curves (synthetic cohort)")

# %% [markdown]
# ## Metrics with intervals
#
# Each metric is computed at the threshold 0.5 and gets a 95% interval from a stratified
# bootstrap that resamples **patients** ({glue:text}`n_boot` replicates in this run);
# AUC also gets DeLong's interval. Sensitivity, specificity, PPV, NPV and F1 are for the
# positive class (non-minor). The class-weighted versions stand beside them, because
# TRACT-NET's reported "sensitivity" equals its accuracy on both cohorts: a weighted
# recall is $\sum_c \frac{n_c}{n}\frac{TP_c}{n_c} = \frac{\sum_c TP_c}{n}$, which *is*
# accuracy, whatever the model does.

# %%
glue("n_boot", f"{n_bootstrap:,}", display=False)
groups_ext = data.rows.patient_id.to_numpy()[external]
tables, preds = {}, []
for label in models:
    oof, fold_runs = cv[label]
    tables[f"{label}, site A cross-validation"] = metrics_table(
        y_int, oof, g_int, n_boot=n_bootstrap, seed=seed)
    tables[f"{label}, site B external"] = metrics_table(
        data.y[external], ext[label]["score_test"], groups_ext, n_boot=n_bootstrap, seed=seed)
    preds.append(predictions_table(g_int, data.rows.scan_id.to_numpy()[internal], y_int, oof,
                                   model=label, evaluation="cv site A"))
    preds.append(predictions_table(groups_ext, data.rows.scan_id.to_numpy()[external],
                                   data.y[external], ext[label]["score_test"], model=label,
                                   evaluation="external site B"))
summary = pd.concat({k: v.apply(lambda r: f"{r.estimate:.3f} [{r.lower:.3f}, {r.upper:.3f}]", axis=1)
                     for k, v in tables.items()}, axis=1)
summary.columns.name = "synthetic cohort"
summary

# %%
best = max(models, key=lambda m: tables[f"{m}, site A cross-validation"].loc["auc"].estimate)
glue("best_model", best, display=False)
glue_metrics("cv", tables[f"{best}, site A cross-validation"], ["auc", "sensitivity", "specificity"])
glue_metrics("ext", tables[f"{best}, site B external"], ["auc"])
oof_a, oof_b = cv["DenseNet"][0], cv["ResNet10"][0]
test = delong_test(y_int, oof_a, oof_b)
glue("delong_p", f"{test['p']:.3f}", display=False)
glue("delong_diff", f"{test['difference']:+.3f}", display=False)
fig = roc_curves({f"{m} CV site A": (y_int, cv[m][0], g_int) for m in models}
                 | {f"{m} site B": (data.y[external], ext[m]["score_test"], groups_ext) for m in models},
                 "ROC, minor vs non-minor (synthetic cohort)",
                 operating_points={"TRACT-NET AMC (published)": (0.81, 0.9645),
                                   "TRACT-NET SOOP (published)": (0.6896, 0.7881)},
                 seed=seed)

# %% [markdown]
# The better baseline in cross-validation is the {glue:text}`best_model`: AUC
# {glue:text}`cv_auc` on site A and {glue:text}`ext_auc` on site B (synthetic). The
# paired DeLong test of DenseNet against ResNet10 on the same site-A patients gives an
# AUC difference of {glue:text}`delong_diff` (p = {glue:text}`delong_p`). Stars mark
# TRACT-NET's published operating points, on its own (real) cohorts.
#
# ### Thresholds and confusion matrices
#
# A threshold chosen on the test data flatters a model. Youden's J is therefore chosen
# on each fold's *validation* patients and applied to its test fold.

# %%
items = {}
for label in models:
    oof, fold_runs = cv[label]
    pred = np.zeros_like(y_int)
    for f in fold_runs:
        thr = youden_threshold(f["y_val"], f["score_val"])
        pred[f["test_index"]] = (oof[f["test_index"]] >= thr).astype(int)
    items[f"{label} CV, Youden (val)"] = (y_int, pred)
    items[f"{label} CV, 0.5"] = (y_int, (oof >= 0.5).astype(int))
fig = confusion_matrices(items, ["minor", "non-minor"], "Confusion matrices, site A (synthetic)")

# %% [markdown]
# ### Calibration
#
# Does a predicted 70 % mean 70 %? The Brier score and reliability curves say. Weighting
# the classes in the loss moves probabilities toward the rarer class (here minor
# stroke), so a model can rank patients well and still be miscalibrated.

# %%
cal = {m: calibration(y_int, cv[m][0]) for m in models}
brier = pd.Series({m: c["brier"] for m, c in cal.items()}, name="Brier score (synthetic, CV)")
display(brier.to_frame())
fig = reliability({m: (c["predicted"], c["observed"]) for m, c in cal.items()},
                  "Reliability, site A CV (synthetic)")

# %% [markdown]
# ## Grad-CAM, checked
#
# Class activation maps of both baselines, each trained on all of site A, on the site-B
# patients. Grad-CAM (MONAI's `GradCAM`) is the method the papers use; LayerCAM (Jiang et
# al., IEEE TIP 2021) stands beside it. Both are upsampled to the input. Two checks:
# **localisation**, the share of the map's energy inside the lesion against the lesion's
# share of the brain (what a uniform map would score), and the pointing game (is the
# map's maximum in the lesion?); and the **randomisation check** of Adebayo et al.
# (2018): re-initialise the top layers and see whether the maps change. Maps that
# survive randomisation explain nothing.

# %%
x_ext, masks_ext, brains_ext = data.x[external], data.masks[external], data.brains[external]
cams, checks = {}, {}
for label, name in models.items():
    maps, checks[label] = saliency_checks(ext[label]["fit"].model, x_ext, masks_ext, brains_ext,
                                          GRADCAM_LAYERS[name], TOP_LAYERS[name], seed=seed)
    cams |= {(label, method): m for method, m in maps.items()}
checks = pd.concat(checks, names=["model"])
for method, key in (("Grad-CAM", "gc"), ("LayerCAM", "lc")):
    row = checks.loc[(best, method)]
    glue(f"{key}_energy", f"{row['energy in lesion']:.3f}", display=False)
    glue(f"{key}_ratio", f"{row['energy / share']:.1f}", display=False)
    glue(f"{key}_pointing", f"{row['pointing game']:.2f}", display=False)
    glue(f"{key}_rho", f"{row['Spearman after randomising top layers']:.2f}", display=False)
glue("cam_share", f"{checks.loc[(best, 'Grad-CAM'), 'lesion share of brain']:.3f}", display=False)
checks.style.format(precision=3).set_caption("Saliency checks on site B (synthetic cohort)")

# %%
order = np.argsort(-masks_ext.sum(axis=(1, 2, 3)))[:2]
fig = gradcam_overlays([(f"{data.rows.patient_id.iloc[external[i]]}, {method}",
                         x_ext[i, 0].numpy(), cams[best, method][i], masks_ext[i])
                        for i in order for method in CAM_METHODS],
                       f"{best} on DWI: Grad-CAM and LayerCAM (synthetic, site B)")

# %% [markdown]
# For the {glue:text}`best_model`, Grad-CAM puts {glue:text}`gc_energy` of its energy
# inside the lesion, which covers {glue:text}`cam_share` of the brain:
# {glue:text}`gc_ratio` times what a uniform map would, and its maximum falls in the
# lesion for {glue:text}`gc_pointing` of the patients. LayerCAM on the same layer puts
# {glue:text}`lc_energy` there ({glue:text}`lc_ratio` times a uniform map; pointing game
# {glue:text}`lc_pointing`). After the top layers are randomised, the maps correlate
# with the trained ones at Spearman {glue:text}`gc_rho` (Grad-CAM) and
# {glue:text}`lc_rho` (LayerCAM): the further from 1, the more a map depends on what the
# model learned. The table gives both models.
#
# Three things decide whether such a map means anything, and the paper chapters report
# all three:
#
# - **The layer.** The last stage of a 3D network is a few voxels wide (1³ to 3³ here),
#   too coarse for an infarct that covers well under 1 % of the brain; the maps come
#   from the deepest stage that still resolves one (`GRADCAM_LAYERS`).
# - **The orientation.** MONAI's default post-processing of `GradCAM` maps the (min,
#   max) of a map to (1, 0), so a map used as it comes out is upside down: it is
#   brightest where the evidence is weakest. `stroke_lib.explain` scales each map to
#   [0, 1] the right way round, and a test checks it on a network whose evidence is known.
# - **The check.** A figure alone cannot show either mistake; the localisation score and
#   the randomisation check can.
#
# ## Our numbers beside TRACT-NET's
#
# TRACT-NET's architecture comes in its own chapter; here the baselines show what the
# paper's metrics look like when computed with intervals. The paper's numbers are on its
# real AMC and SOOP cohorts; ours are on the synthetic cohort.

# %%
paper_vs_study("tractnet", "AMC (3-fold CV)", tables[f"{best}, site A cross-validation"],
               f"{best}, synthetic site A CV [95% CI]")

# %% [markdown]
# ## What the paper chapters will report, and why
#
# - AUC with DeLong and patient-bootstrap intervals, the ROC curve with its band, and
#   positive-class sensitivity, specificity, PPV, NPV and F1 at 0.5 and at a Youden
#   threshold chosen on validation patients: these are what a clinician can act on.
# - Class-weighted metrics beside them where a paper reports those, so the comparison is
#   like with like.
# - Calibration, because a probability is only useful if it means what it says.
# - Grad-CAM only with its localisation score and randomisation check.
# - Internal cross-validation by patient and external validation on another site, never
#   a random split of images.
#
# ## Model cards and the run record

# %%
predictions = pd.concat(preds, ignore_index=True)
out_dir.mkdir(parents=True, exist_ok=True)
predictions.to_csv(out_dir / "predictions.csv", index=False)
write_record(out_dir / "results.json", run, {"dataset": dataset, "epochs": epochs, "folds": folds,
             "n_bootstrap": n_bootstrap}, tables, timings, out_dir / "predictions.csv",
             {"saliency": {f"{m} {meth}": row.to_dict() for (m, meth), row in checks.iterrows()}})
cards = [model_card(out_dir / label, label, "minor vs non-minor ischaemic stroke (NIHSS > 3) from DWI",
                    f"{dataset} cohort, site A (training), site B (external)",
                    tables[f"{label}, site B external"],
                    ["trained on synthetic data", "small smoke-profile network" if slim else "full profile",
                     "one site for training"],
                    {"type": "image", "format": "magnitude", "num_channels": int(data.x.shape[1]),
                     "spatial_shape": list(s["input_shape"]), "dtype": "float32"}, run)
         for label in models]
pd.concat(cards, axis=1)

# %% [markdown]
# ## Try it yourself
#
# - `-p epochs 80`: train longer (early stopping still picks the best epoch).
# - `-p seed 1`: another cohort, other folds, other initial weights.
# - `-p profile full` on a GPU: DenseNet121 and ResNet10 at 128 x 128 x 64, 2,000
#   bootstrap replicates.
# - `-p dataset soop -p data_root /data/soop`: the real SOOP cohort (it has one site, so
#   the external evaluation needs a second dataset).
#
# Reporting checklist items this chapter covers: patient-level splits, external
# validation, intervals on every metric, threshold chosen without test data, calibration,
# saliency maps with a sanity check.
