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
# The task is the one of TRACT-NET {cite:p}`oh2026tractnet`: **minor vs non-minor
# ischaemic stroke (NIHSS ≤ 3 vs > 3) from DWI**. Two MONAI baselines, a DenseNet and a
# ResNet, are trained with patient-level cross-validation on the internal site and
# evaluated on the external one. On the embedded cohort every number here is
# **synthetic**.

# %% tags=["parameters"]
profile: str = "auto"  # "smoke" | "full" | "auto" (full on CUDA, smoke otherwise)
dataset: str = "synthetic"  # "synthetic" or "soop" (a real dataset with NIHSS; see data_manifests/)
data_root: str = ""  # folder of a real dataset; "" reads <data directory>/<dataset>
device: str = "auto"  # auto, cpu or cuda
seed: int = 0
n_subjects: int = 0  # embedded cohort size; 0: the profile's default
in_plane: int = 0  # embedded cohort pixels per side of an axial slice; 0: the profile's default
epochs: int = 0  # 0: the profile's default
folds: int = 0  # 0: the profile's default
n_bootstrap: int = 0  # 0: the profile's default (2,000 in full)

# %%
import time

import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from stroke_lib.data import CohortSpec, load_dataset
from stroke_lib.data.synthetic.labels import NIHSS_MINOR_CUTOFF
from stroke_lib.datasets import augmentation, severity_task
from stroke_lib.explain import CAM_METHODS, RANDOMISATION_RULE, overlay_cases, saliency_checks
from stroke_lib.metrics import calibration, delong_test, metrics_table, youden_threshold
from stroke_lib.models import GRADCAM_LAYERS, TOP_LAYERS, baseline
from stroke_lib.page import chapter_opening, glue_figure, interval_column
from stroke_lib.plots import confusion_matrices, gradcam_overlays, reliability, roc_curves, training_curves
from stroke_lib.report import (ceiling_beside_auc, glue_metrics, model_card, paper_vs_study,
                               published_roc_points, run_folder, saliency_views, write_record)
from stroke_lib.runtime import start_run
from stroke_lib.train import TrainConfig, cross_validate, predictions_table, train_and_test

run = start_run(profile, device, seed)
out_dir = run_folder("01_evaluation", globals(), run.profile)  # the book's run, or an experiment's own folder
s = run.settings
epochs = epochs or int(s["epochs"])
folds = folds or int(s["folds"])
n_bootstrap = n_bootstrap or int(s["bootstrap"])
slim = run.profile == "smoke"
synthetic = dataset == "synthetic"
tag = "synthetic" if synthetic else dataset
spec = CohortSpec(n_subjects=n_subjects or int(s["n_subjects"]),
                  in_plane=in_plane or int(s["in_plane"]), seed=seed)
chapter_opening(
    ["the one training loop of the book, and patient-level cross-validation with a guard "
     "against leaks;",
     "every metric with a 95% confidence interval that resamples patients, and DeLong's "
     "interval and test for AUC;",
     "why a class-weighted recall always equals accuracy, and how to set a published number "
     "beside ours of the same definition;",
     "the oracle ceiling: the best AUC any model could reach on this task and population;",
     "how to check a saliency map: against the same network with random weights, and "
     "against randomising its top layers."],
    run,
    {"dataset": dataset, "data_root": data_root or ("-" if synthetic else f"<data directory>/{dataset}"),
     "cohort": f"{spec.n_subjects} subjects, {spec.in_plane} px" if synthetic else "-",
     "epochs": epochs, "folds": folds, "bootstrap replicates": n_bootstrap,
     "input shape": s["input_shape"],
     "models": "slim DenseNet, slim ResNet10" if slim else "DenseNet121, ResNet10"},
    out_dir / "results.json")

# %% [markdown]
# ## Data: ischaemic stroke patients' DWI
#
# Ischaemic stroke patients, one DWI b1000 trace each, as in TRACT-NET (its cohorts are
# ischaemic stroke patients, and it reads DWI alone). The positive class is **non-minor**
# stroke (NIHSS > 3; the paper does not give its cut-off, and NIHSS ≤ 3 is the most used
# definition of minor stroke {cite:p}`fischer2010`). Each volume is standardised within
# the brain by its median and interquartile range, and resized to the profile's input
# shape once, before training.
#
# Why not the usual z-score? A large bright lesion raises the brain's mean and standard
# deviation, so after a z-score all normal tissue is darker in a patient with a large
# infarct. That global dimming tracks lesion volume, and so NIHSS: a network can score
# well from it without looking at the lesion. The median and IQR barely move.

# %%
cohort = load_dataset(dataset, data_root or None, spec, modalities=("DWI",))  # the chapter reads DWI only
task = severity_task(cohort.table, NIHSS_MINOR_CUTOFF, s["input_shape"])
data, internal, external, internal_site = task.data, task.internal, task.external, task.internal_site
has_external, has_masks, ev_int, ev_ext = task.has_external, task.has_masks, task.ev_int, task.ev_ext
task.counts(tag)

# %%
display(Markdown(task.availability(
    dataset, synthetic, f"Site {internal_site} is cross-validated; the other site is the external "
    "evaluation, and lesion masks score the saliency maps.")))

# %% [markdown]
# ## Training and cross-validation
#
# {py:func}`stroke_lib.train.fit` is the one training loop: AdamW with a cosine
# learning-rate schedule, BCE loss with the positive class weighted by the class ratio,
# gradient clipping, bf16 autocast on CUDA, early stopping on validation loss (once a
# quarter of the epochs has passed without a better one) with the best epoch kept and,
# when given a checkpoint folder (`TrainConfig.checkpoint_dir`), a checkpoint every epoch
# that a killed run resumes from (the chapters, minutes long, pass none and keep no
# weights). Every training sample is augmented each time it is drawn (MONAI random affine,
# intensity scale and noise, seeded and checkpointed with the rest): without it, a network
# this size memorises a hundred patients within five epochs. Folds come from
# scikit-learn's `StratifiedGroupKFold` on patient IDs, and every split is checked: a
# patient on both sides raises. Inside each training fold a fifth of the patients is held
# out for early stopping and for choosing the Youden threshold; the test fold is never
# seen before it is scored.

# %%
config = TrainConfig(epochs=epochs, patience=max(3, epochs // 4), lr=float(s["lr"]),
                     batch_size=int(s["batch_size"]), device=run.device, seed=seed, progress=False,
                     augment=augmentation(spatial_size=s["input_shape"]), cosine=True)
x_int, y_int = data.x[internal], data.y[internal]
g_int = data.rows.patient_id.to_numpy()[internal]
models = {"DenseNet": "densenet", "ResNet10": "resnet10"}
cv, ext, timings = {}, {}, {}
for label, name in models.items():
    make = lambda name=name: baseline(name, in_channels=data.x.shape[1], slim=slim)
    t0 = time.perf_counter()
    cv[label] = cross_validate(make, x_int, y_int, g_int, folds, config)
    if has_external:
        ext[label] = train_and_test(make, x_int, y_int, g_int, data.x[external], config)
    timings[label] = time.perf_counter() - t0
glue_figure("fig_training", training_curves(
    {f"{lab} fold {k + 1}": f["fit"].history for lab in cv for k, f in enumerate(cv[lab][1])},
    f"Training curves ({tag} cohort)"))

# %% [markdown]
# ```{glue:figure} fig_training
# :name: fig-01-training
# :alt: Training and validation loss per epoch for each fold of both baselines; the validation losses flatten while the training losses keep falling.
#
# Training (solid) and validation (dashed) loss per epoch, each fold of each baseline.
# Early stopping keeps the epoch with the lowest validation loss.
# ```
#
# ## Metrics with intervals
#
# Each metric is computed at the threshold 0.5 and gets a 95% interval from a stratified
# bootstrap that resamples **patients** ({glue:text}`n_boot` replicates in this run); a
# proportion at 0 or 1, or with fewer than ten patients in its denominator, gets a
# Wilson interval {cite:p}`wilson1927` instead, and the table says so. AUC also gets
# DeLong's interval {cite:p}`delong1988`, clustered by patient {cite:p}`obuchowski1997`.
# Sensitivity, specificity, PPV, NPV and F1 are for the positive class (non-minor). The
# class-weighted versions stand beside them, because a weighted recall is
# $\sum_c \frac{n_c}{n}\frac{TP_c}{n_c} = \frac{\sum_c TP_c}{n}$, which *is* accuracy,
# whatever the model does. Numbers are rounded to what their intervals support.

# %%
glue("n_boot", f"{n_bootstrap:,}", display=False)
groups_ext = data.rows.patient_id.to_numpy()[external]
tables, preds = {}, []
for label in models:
    oof, fold_runs = cv[label]
    tables[f"{label}, {ev_int}"] = metrics_table(y_int, oof, g_int, n_boot=n_bootstrap, seed=seed)
    preds.append(predictions_table(g_int, data.rows.scan_id.to_numpy()[internal], y_int, oof,
                                   model=label, evaluation=ev_int))
    if has_external:
        tables[f"{label}, {ev_ext}"] = metrics_table(
            data.y[external], ext[label]["score_test"], groups_ext, n_boot=n_bootstrap, seed=seed)
        preds.append(predictions_table(groups_ext, data.rows.scan_id.to_numpy()[external],
                                       data.y[external], ext[label]["score_test"], model=label,
                                       evaluation=ev_ext))
summary = pd.concat({k: interval_column(v) for k, v in tables.items()}, axis=1)
summary.columns.name = f"{tag} cohort: estimate [95% CI]"
summary

# %% [markdown]
# ### How far from the best possible
#
# Labels carry noise, so no model reaches an AUC of 1. On the embedded cohort the **oracle
# ceiling** of this task is known: the AUC of each patient's true latent NIHSS risk
# against the drawn label, on the same patients as the evaluation. It is what a model
# that saw everything the label depends on would score, the unseen clinical factors
# included. The **image-only ceiling** keeps only the part of the latent risk that the
# lesion itself sets (its volume and where it lies): the best a model reading the image
# could hope for. The last columns say how much of the way from chance (0.5) to the oracle
# ceiling each model comes; with few patients an AUC can pass a ceiling's point estimate by
# chance, and the share then reads above 1 (their intervals overlap).

# %%
ceilings = ceiling_beside_auc(task.ceiling_evaluations(), tables, list(models), n_boot=n_bootstrap, seed=seed)
ceilings.columns.name = f"{tag} cohort"
ceilings

# %%
best = max(models, key=lambda m: tables[f"{m}, {ev_int}"].loc["auc"].estimate)
glue("best_model", best, display=False)
glue_metrics("cv", tables[f"{best}, {ev_int}"], ["auc", "sensitivity", "specificity"])
glue("ceiling_int", ceilings.loc[ev_int, "oracle ceiling"], display=False)
glue("share_int", ceilings.loc[ev_int, f"{best}: share of the way from chance to the oracle ceiling"]
     if "image-only ceiling" in ceilings else "-", display=False)
glue("image_ceiling_int", ceilings.loc[ev_int, "image-only ceiling"] if "image-only ceiling" in ceilings
     else "unknown", display=False)
test = delong_test(y_int, cv["DenseNet"][0], cv["ResNet10"][0], groups=g_int)
glue("delong_p", f"{test['p']:.2f}", display=False)
glue("delong_diff", f"{test['difference']:+.3f}", display=False)
curves = {f"{m}, {ev_int}": (y_int, cv[m][0], g_int) for m in models}
if has_external:
    curves |= {f"{m}, {ev_ext}": (data.y[external], ext[m]["score_test"], groups_ext) for m in models}
glue_figure("fig_roc", roc_curves(curves, f"ROC, minor vs non-minor ({tag} cohort)",
                                  operating_points=published_roc_points("tractnet"), n_boot=n_bootstrap,
                                  seed=seed))

# %% [markdown]
# ```{glue:figure} fig_roc
# :name: fig-01-roc
# :alt: ROC curves of the DenseNet and ResNet10 baselines with shaded 95% bands, above the diagonal of chance.
#
# ROC curves of both baselines, cross-validated on the internal site and, where there is
# one, on the external site. Each band is the pointwise 95% interval over bootstrap
# replicates that resample patients (the legend gives their number). No published
# operating point is drawn: TRACT-NET's "sensitivity" is a class-weighted recall, so its
# (sensitivity, specificity) pairs are not points on these axes.
# ```
#
# The better baseline in cross-validation is the {glue:text}`best_model`: AUC
# {glue:text}`cv_auc`, against an oracle ceiling of {glue:text}`ceiling_int` and an
# image-only ceiling of {glue:text}`image_ceiling_int` on the same patients, so it comes
# {glue:text}`share_int` of the way from chance to the oracle ceiling. The paired DeLong test of DenseNet against ResNet10 on the same patients
# gives an AUC difference of {glue:text}`delong_diff` (p = {glue:text}`delong_p`).
#
# ### Thresholds and confusion matrices
#
# A threshold chosen on the test data flatters a model. Youden's J {cite:p}`youden1950` is therefore chosen
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
glue_figure("fig_confusion", confusion_matrices(items, ["minor", "non-minor"],
                                                f"Confusion matrices, site {internal_site} ({tag})"))

# %% [markdown]
# ```{glue:figure} fig_confusion
# :name: fig-01-confusion
# :alt: Four confusion matrices, minor against non-minor, for each baseline at Youden's threshold and at 0.5.
#
# Cross-validated confusion matrices of both baselines, at the Youden threshold chosen
# on validation patients and at 0.5.
# ```
#
# ### Calibration
#
# Does a predicted 70 % mean 70 %? The Brier score {cite:p}`brier1950` says how far predicted probabilities
# are from the outcomes; beside it stands the Brier score of a model that predicts the
# prevalence for everyone, and the **Brier skill score**, 1 minus their ratio: above 0
# the model beats that reference. Weighting the classes in the loss moves probabilities
# toward the rarer class, so a model can rank patients well and still be miscalibrated.

# %%
cal = {m: calibration(y_int, cv[m][0]) for m in models}
brier = pd.DataFrame({m: {"Brier score": c["brier"], "Brier score of the prevalence": c["brier_reference"],
                          "Brier skill score": c["brier_skill"]} for m, c in cal.items()}).T.round(3)
brier.columns.name = f"{tag}, cross-validation"
display(brier)
glue_figure("fig_reliability", reliability({m: (c["predicted"], c["observed"]) for m, c in cal.items()},
                                           f"Reliability, site {internal_site} CV ({tag})"))

# %% [markdown]
# ```{glue:figure} fig_reliability
# :name: fig-01-reliability
# :alt: Reliability curves of both baselines against the diagonal of perfect calibration.
#
# Observed rate of non-minor stroke against the mean predicted probability, in five bins
# of equal size; the diagonal is perfect calibration.
# ```
#
# ## Saliency maps, with their controls
#
# Class activation maps of both baselines (Grad-CAM {cite:p}`selvaraju2017gradcam`, MONAI's `GradCAM`, the method the
# papers use; LayerCAM {cite:p}`jiang2021layercam` beside it), on patients the model never
# trained on. A map that sits on the lesion is evidence of nothing by itself: bright
# voxels and the layer's receptive field pull a map there whatever the network learned.
# So each trained model is set against **the same architecture with random weights**,
# patient by patient, and its maps against those after **randomising its top layers**
# {cite:p}`adebayo2018sanity`. Localisation is the share of the map's energy inside the
# lesion (a uniform map scores the lesion's share of the brain) and the pointing game
# (is the map's maximum in the lesion? by chance, with the lesion's share of the brain).
# Intervals resample patients (pointing game: Wilson). The randomisation check passes
# when the whole interval of the mean Spearman correlation lies below
# {glue:text}`rand_rule`, fails when it lies above, and is inconclusive otherwise.

# %%
glue("rand_rule", f"{RANDOMISATION_RULE}", display=False)
if has_external:
    x_sal, sal_idx = data.x[external], external
    sal_models = {label: ext[label]["fit"].model for label in models}
    sal_where = "the external site's patients, scored by the model trained on the internal site"
else:  # one site: the first fold's model on its own test patients
    sal_idx = internal[cv["DenseNet"][1][0]["test_index"]]
    x_sal = data.x[sal_idx]
    sal_models = {label: cv[label][1][0]["fit"].model for label in models}
    sal_where = "the first fold's test patients, scored by that fold's model"
masks_sal, brains_sal = data.masks[sal_idx], data.brains[sal_idx]
groups_sal = data.rows.patient_id.to_numpy()[sal_idx]
reports = {label: saliency_checks(sal_models[label], x_sal, masks_sal, brains_sal, GRADCAM_LAYERS[name],
                                  TOP_LAYERS[name], groups=groups_sal, seed=seed,
                                  n_boot=n_bootstrap, localise=has_masks)
           for label, name in models.items()}
display(Markdown(f"Maps are computed on {sal_where}."))
loc_view, verdict_view, sentences = saliency_views(reports, tag)
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
#
# A pointing game near its chance level says the map's single brightest voxel is no
# better than a random point; at the 6³ to 12³ resolution of these layers one voxel of
# the map covers a whole small infarct and its surroundings, so the pointing game is a
# harsh score here, and the energy share the fairer one.

# %%
chosen = overlay_cases(masks_sal)
glue("overlay_best", best, display=False)
glue_figure("fig_saliency", gradcam_overlays(
    [(f"{why}\n{groups_sal[i]}, {method}", x_sal[i, 0].numpy(), reports[best].maps[method, "trained"][i],
      masks_sal[i]) for why, i in chosen for method in CAM_METHODS],
    f"{best} on DWI: Grad-CAM and LayerCAM ({tag})"))

# %% [markdown]
# ```{glue:figure} fig_saliency
# :name: fig-01-saliency
# :alt: Grad-CAM and LayerCAM of the better baseline over four axial DWI slices of two patients, the lesion outlined in white.
#
# Grad-CAM and LayerCAM of the {glue:text}`overlay_best` over four axial slices around
# the lesion of two patients chosen by lesion size: the patient with the **largest**
# lesion and the one with the **median** lesion (a typical case), each map scaled to
# [0, 1] per patient. One figure shows what maps look like; whether they mean anything
# is in the tables above.
# ```
#
# Three things decide whether such a map means anything, and the paper chapters report
# all three:
#
# - **The layer.** The last stage of a 3D network is a few voxels wide (1³ to 3³ here),
#   too coarse for an infarct that covers well under 1 % of the brain; the maps come
#   from the deepest stage that still resolves one ({py:data}`GRADCAM_LAYERS <stroke_lib.models.GRADCAM_LAYERS>`).
# - **The orientation.** MONAI's default post-processing of `GradCAM` maps the (min,
#   max) of a map to (1, 0), so a map used as it comes out is upside down: it is
#   brightest where the evidence is weakest. {py:mod}`stroke_lib.explain` scales each map to
#   [0, 1] the right way round, and a test checks it on a network whose evidence is known.
# - **The controls.** A figure alone cannot show either mistake, nor whether the network
#   learned anything: the random-weight control and the randomisation check can.
#
# ## Our numbers beside TRACT-NET's
#
# TRACT-NET's architecture comes in its own chapter; here the baselines show what the
# paper's metrics look like with intervals, each beside our metric **of the same
# definition**. The paper's "sensitivity" equals its accuracy on both cohorts, which only
# a class-weighted recall does, so it stands beside our weighted recall. Its
# "specificity" cannot be the positive-class specificity of that operating point, so no
# metric of ours stands beside it. Our positive-class sensitivity and specificity have
# rows of their own, marked *not comparable*, for reference. Where the paper does not say
# how a metric was averaged, both of our readings are shown. The
# paper's numbers are on its real cohorts (source in the table); ours are {glue:text}`tag`.

# %%
glue("tag", tag, display=False)
paper_vs_study("tractnet", "AMC (3-fold CV)", tables[f"{best}, {ev_int}"],
               f"{best}, {tag} {ev_int} [95% CI]")

# %% [markdown]
# ## What the paper chapters will report, and why
#
# - AUC with DeLong and patient-bootstrap intervals, the ROC curve with its band, and
#   positive-class sensitivity, specificity, PPV, NPV and F1 at 0.5 and at a Youden
#   threshold chosen on validation patients: these are what a clinician can act on.
# - The oracle ceiling of the chapter's own task and population beside its AUCs.
# - Class-weighted metrics beside them where a paper reports those, so the comparison is
#   like with like.
# - Calibration with the Brier skill score, because a probability is only useful if it
#   means what it says.
# - Saliency maps only with the random-weight control and the randomisation check.
# - Internal cross-validation by patient and external validation on another site, never
#   a random split of images.
#
# ## Model cards and the run record

# %%
predictions = pd.concat(preds, ignore_index=True)
out_dir.mkdir(parents=True, exist_ok=True)
predictions.to_csv(out_dir / "predictions.csv", index=False)
saliency = {}
for m, r in reports.items():
    for method, row in r.verdicts.iterrows():
        saliency[f"{m} {method}"] = row.to_dict()
        if has_masks:
            for network in ("trained", "random weights"):
                saliency[f"{m} {method}"][network] = r.localisation.loc[(method, network)].to_dict()
write_record(out_dir / "results.json", run,
             {"dataset": dataset, "n_subjects": spec.n_subjects, "in_plane": spec.in_plane, "epochs": epochs,
              "folds": folds, "n_bootstrap": n_bootstrap}, tables, timings, out_dir / "predictions.csv",
             {"saliency": saliency, "ceiling": ceilings.to_dict(orient="index")})
card_eval = ev_ext if has_external else ev_int
cards = [model_card(out_dir / label, label, "minor vs non-minor ischaemic stroke (NIHSS > 3) from DWI",
                    f"{dataset} cohort, site {internal_site} (training)"
                    + (", other sites (external)" if has_external else ""),
                    tables[f"{label}, {card_eval}"],
                    [f"trained on {tag} data", "small smoke-profile network" if slim else "full profile",
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
# - `-p n_subjects 400`: a larger embedded cohort (narrower intervals).
# - `-p profile full` on a GPU: DenseNet121 and ResNet10 at 128 x 128 x 64, 2,000
#   bootstrap replicates.
# - `-p dataset soop`: the real SOOP cohort from `<data directory>/soop` (`-p data_root`
#   for another folder). It has one site and no lesion masks, so the chapter
#   cross-validates, skips the external evaluation and the localisation, and keeps the
#   randomisation check.
#
# Reporting checklist items this chapter covers: patient-level splits, external
# validation, intervals on every metric, threshold chosen without test data, calibration,
# the ceiling set by label noise, saliency maps with controls.
