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
# # The data: embedded cohort, loaders, windowing, real datasets
#
# Everything in this chapter that is measured on the embedded cohort is **synthetic**:
# made from the MNI152 template, not from patients.

# %% tags=["parameters"]
profile: str = "auto"  # "smoke" | "full" | "auto" (full on CUDA, smoke otherwise)
dataset: str = "synthetic"  # or a manifest: soop, isles_2022, isles_2024, rsna_ich_2019, cq500, aisd, teknofest_2021
data_root: str = ""  # folder of a real dataset; "" reads <data directory>/<dataset>
device: str = "auto"  # auto, cpu or cuda
seed: int = 0
n_subjects: int = 0  # embedded cohort size; 0: the profile's default
in_plane: int = 0  # pixels per side of an axial slice; 0: the profile's default

# %%
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from IPython.display import Markdown, display
from myst_nb import glue

from stroke_lib.data import CohortSpec, load_dataset, read_ct_series, read_nifti
from stroke_lib.data import faults
from stroke_lib.data.cohort import load_ct_series_folders, load_soop
from stroke_lib.data.manifests import manifest_table
from stroke_lib.data.synthetic import cohort_path, mirror_contrast
from stroke_lib.data.synthetic.realism import (SHIFT_MM_PER_ML, baseline_table, ct_on_dwi, measure_subjects,
                                               outline_misfit_by_slice, read_subject, realism_table)
from stroke_lib.data.summary import lesion_contrast
from stroke_lib.data.synthetic.labels import model_table
from stroke_lib.metrics import median_ci
from stroke_lib.page import chapter_opening, format_interval, glue_figure
from stroke_lib.paths import data_dir
from stroke_lib.plots import (LESION_STYLES, ct_slices, ct_windows, dwi_adc, label_distributions, mass_effect, paired_differences,
                              two_acquisitions)
from stroke_lib.preprocess import WINDOWS
from stroke_lib.runtime import start_run, versions

run = start_run(profile, device, seed)
spec = CohortSpec(
    n_subjects=n_subjects or int(run.settings["n_subjects"]),
    in_plane=in_plane or int(run.settings["in_plane"]),
    seed=seed,
)
synthetic = dataset == "synthetic"
tag = "synthetic" if synthetic else dataset
chapter_opening(
    ["what data each of the four papers used, and which of it anyone can download;",
     "how the embedded cohort that every chapter runs on by default is made, and what its "
     "labels mean (the causal model behind them, and the best AUC any model could reach);",
     "how CT windows change what an early infarct looks like, and how infarcts and "
     "haemorrhages look on DWI and ADC;",
     "what happens to a scan that cannot be read: it is skipped and listed, and the rest "
     "of the cohort loads."],
    run,
    {"dataset": dataset, "data_root": data_root or ("-" if synthetic else f"<data directory>/{dataset}"),
     "n_subjects": spec.n_subjects if synthetic else "-", "in_plane": spec.in_plane if synthetic else "-"},
    cohort_path(spec) if synthetic else data_dir() / dataset,
    "embedded cohort (generated once, then reused)" if synthetic else "dataset is read from")

# %% [markdown]
# ## What the papers used, and what is public
#
# | paper | task | data | public? |
# |---|---|---|---|
# | TRACT-NET {cite:p}`oh2026tractnet` | minor vs non-minor stroke (NIHSS) from DWI | 273 patients, Asan Medical Center (3-fold CV); 1,106 SOOP patients (external) | AMC private; **SOOP public** {cite:p}`absher2024soop` (OpenNeuro ds004889, CC0) |
# | CTNet {cite:p}`zhang2026ctnet` | haemorrhagic transformation from NCCT | 474 patients, 611-613 CT scans, Beijing Tiantan Hospital; 5 mm slices cropped to 28 | private; no public CT set with HT labels was found |
# | CNN, CNN+RNN and transfer learning {cite:p}`waghmare` | ischaemic vs haemorrhagic on CT and MRI | "[X] CT scans and [Y] MRI scans": the counts are placeholders in the paper | nothing to download; public stand-ins: RSNA ICH 2019, CQ500, TEKNOFEST 2021 |
# | adaptive transfer learning {cite:p}`jung` | ischaemic stroke regions on NCCT, adaptive transfer | 356 patients, 16,376 2D images split by image; 40-50 slices each | private; public stand-in: AISD (397 NCCT with infarct masks) |
#
# Three of the four studies used private data, so this book runs by default on an
# **embedded cohort** that it generates itself, read through the same loaders that read
# the public datasets listed at the end of this chapter.

# %% [markdown]
# ## The embedded cohort
#
# Each subject starts from the MNI ICBM152 2009 grey- and white-matter templates that
# nilearn ships inside its wheel. A random affine (rotation, scale, shift) and a mild
# elastic field move it into a scanner; age widens the ventricles and sulci and brings
# periventricular leukoaraiosis. Lesions are drawn inside vascular territories (MCA most
# often; ACA, PCA, lacunar, brainstem) as smoothed random fields with lognormal volumes:
# an acute infarct is 2-6 HU darker than normal tissue on CT ({cite:t}`jung`, section 2.4),
# bright on DWI and dark on ADC; an old infarct is CSF-like; a haemorrhage is 55-85 HU with
# perihaematomal oedema. The CT is written as a real DICOM series (5 mm slices, int16 with
# RescaleSlope/RescaleIntercept); the DWI (b1000 trace, ADC and b0) as BIDS NIfTI in
# SOOP's layout, a second acquisition with its own grid and head position. Site B
# differs from site A in noise, contrast, slice count, field of view and case mix. Some
# ischaemic patients also have follow-up NCCT scans taken before any haemorrhagic
# transformation, with a new head position and a more hypodense infarct
# ({py:attr}`CohortSpec.followup_rate <stroke_lib.data.synthetic.CohortSpec.followup_rate>`; chapter 03 uses them); the sections below show each
# patient's baseline scan.

# %%
cohort = load_dataset(dataset, data_root or None, spec)
table = cohort.table
glue("n_scans", len(table), display=False)
glue("n_patients", table.patient_id.nunique(), display=False)
summary = (table.groupby(["site", "modality"]).patient_id.nunique()
           .unstack("modality").rename_axis(columns=None))
summary

# %% [markdown]
# The cohort table has one row per scan ({glue:text}`n_scans` scans of
# {glue:text}`n_patients` patients), with pseudonymous IDs only: no DICOM attribute is
# copied into it. A few columns of the first rows:

# %%
cols = [c for c in ["patient_id", "modality", "site", "age", "sex", "stroke_type", "territory",
                    "lesion_volume_ml", "nihss", "severity", "ht"] if c in table]
table[cols].head(6)

# %% [markdown]
# ### What the labels mean
#
# The labels come from a causal model with noise, so that no model can be perfect. NIHSS
# grows with the log of the lesion volume and with lesion in the motor strip (or internal
# capsule), the left perisylvian language cortex and the brainstem; a stroke is *minor*
# at NIHSS ≤ 3 {cite:p}`fischer2010`; TRACT-NET does not give its cut-off.
# Haemorrhagic transformation (ischaemic subjects only) depends on infarct volume, the
# hyperdense artery sign, leukoaraiosis, age and thrombolysis, which no image shows.
# A region is rated *early ischaemic sign* when the acute infarct covers more than a
# rater's threshold of it.

# %%
pd.DataFrame(model_table()).set_index(["label", "term"])

# %% [markdown]
# The **oracle ceiling** of a label is the AUC of its true latent risk against the drawn
# label: the best any model could do on this cohort. The latent risk includes what no
# image shows (for NIHSS an unseen clinical factor; for HT thrombolysis, glucose and a
# cardioembolic source), so an image-only model stays further below it; the chapters also
# show the ceiling of the image part alone where the cohort records it.
#
# **How often haemorrhagic transformation occurs** is a parameter of the label model,
# {py:attr}`CohortSpec.ht_base_rate <stroke_lib.data.synthetic.CohortSpec.ht_base_rate>` (default 0.25): the HT intercept is solved so that the expected
# share of ischaemic subjects with HT equals it, while infarct volume, the hyperdense artery
# sign, leukoaraiosis, age and the unseen factors move each patient's risk. The default is
# a population rate, not CTNet's nearly 1:1 sample of 243 patients with HT and 231 without,
# matched by age and sex {cite:p}`zhang2026ctnet`, because the cohort stands for the
# patients a model would meet: HT is reported in 2.2-44 % of ischaemic strokes depending on
# how it is defined and imaged {cite:p}`aviv2009`, most series between 10 and 40 %. A
# matched sample inflates accuracy and positive predictive value but leaves AUC
# comparable; `ht_base_rate=0.5` reproduces CTNet's design.

# %%
if synthetic:
    oracle = json.loads((cohort.root / "derivatives" / "oracle.json").read_text())
    oracle_table = pd.DataFrame(oracle).T.astype(float).round(3)
    oracle_table.index.name = "label (synthetic cohort)"
    for key, label in (("oracle_nonminor", "non_minor"), ("oracle_ht", "ht")):
        value = oracle[label]["all"]
        glue(key, "undefined (one class)" if value is None else f"{value:.3f}", display=False)
    display(oracle_table)
else:
    glue("oracle_nonminor", "unknown on real data", display=False)
    glue("oracle_ht", "unknown on real data", display=False)
    display(Markdown(f"{dataset} is real data: no latent risk is known, so no oracle ceiling."))

# %% [markdown]
# On this synthetic cohort the best possible AUC is {glue:text}`oracle_nonminor` for
# minor vs non-minor stroke (all stroke subjects) and {glue:text}`oracle_ht` for
# haemorrhagic transformation. A chapter whose task keeps only some of the patients (the
# next one keeps ischaemic strokes) computes the ceiling of its own population.

# %%
one_row_each = table.drop_duplicates("patient_id")
glue_figure("fig_labels", label_distributions(one_row_each, f"Labels per site ({tag} cohort)"))

# %% [markdown]
# ```{glue:figure} fig_labels
# :name: fig-00-labels
# :alt: Bar charts and a histogram of the labels per site: stroke type, NIHSS, severity and haemorrhagic transformation.
#
# The labels of the cohort per site, one count per patient.
# ```
#
# ## CT windows
#
# An early infarct is only a few HU darker than healthy tissue. In the standard brain
# window (centre 40, width 80) that is a 3-8 % change of grey level; the narrow windows
# that {cite:t}`jung` propose (width 30 and 20 around 40 HU) stretch it.

# %%
ct = table[(table.modality == "CT") & (table.followup == 0)] if "followup" in table else table[table.modality == "CT"]
if ct.empty:
    picks = ct
    display(Markdown(f"{dataset} has no CT: the CT sections of this chapter are skipped."))
elif "stroke_type" in ct:
    picks = pd.concat([
        ct[(ct.stroke_type == "ischaemic") & (ct.lesion_volume_ml > 5)].head(2),
        ct[(ct.stroke_type == "haemorrhagic") & (ct.lesion_volume_ml > 5)].head(1),
        ct[ct.stroke_type == "none"].head(1),
    ])
else:
    picks = ct.head(3)
rows = []
for _, r in picks.iterrows():
    hu = read_ct_series(r.image).data
    mask = read_nifti(r["mask"]).data if isinstance(r.get("mask"), str) else np.zeros_like(hu)
    label = f"{r.patient_id} site {r.site}\n{r.get('stroke_type', '')} {r.get('territory', '')}"
    rows.append((label, hu, mask))
windows = [WINDOWS["brain"], WINDOWS["stroke_narrow"], WINDOWS["stroke_narrowest"]]
if rows:
    glue_figure("fig_ct_windows", ct_windows(rows, windows, f"NCCT of {tag} subjects in three windows"))
else:
    glue("fig_ct_windows", Markdown(f"*{dataset} has no CT.*"), display=False)

# %% [markdown]
# ```{glue:figure} fig_ct_windows
# :name: fig-00-ct-windows
# :alt: Axial NCCT slices of four subjects, each in the standard brain window and two narrower stroke windows, with the lesions outlined in colour.
#
# The same axial slice of each subject (the slice with most lesion) in the standard
# brain window and the two narrow windows of {cite:t}`jung`, with the colour bar of each
# window in HU. Outlines: acute infarct yellow, old infarct blue, haemorrhage orange
# (legend below the figure). The narrower the window, the darker an early infarct
# looks against its surroundings, and the noisier the image.
# ```

# %% [markdown]
# How dark is an early infarct, really? For every ischaemic subject we compare the mean
# HU inside the infarct with the mirror-image voxels across the midline (skull and CSF
# left out) and set that against the darkening from water uptake that the generator
# applied. Grey matter inside the infarct also loses part of its contrast over white
# matter (the loss of grey-white differentiation, growing with time since onset), so the
# measured drop is larger than the applied one.

# %%
if synthetic:
    rows = []
    for _, r in ct[ct.stroke_type == "ischaemic"].iterrows():
        mask = read_nifti(r["mask"]).data == 1
        if mask.sum() < 10:
            continue
        vol = read_ct_series(r.image)
        geometry = json.loads((cohort.root / "derivatives" / "geometry" / f"{r.patient_id}.json").read_text())
        rows.append({"patient_id": r.patient_id, "site": r.site,
                     "applied": -r.early_ct_delta_hu,
                     "measured": mirror_contrast(vol.data, vol.affine, mask, geometry, (15, 60))})
    contrast = pd.DataFrame(rows)
    median = contrast.measured.median()
    glue("ct_contrast_median", f"{abs(median):.1f} HU {'below' if median < 0 else 'above'}", display=False)
    glue("ct_contrast_n", len(contrast), display=False)
    glue_figure("fig_ct_contrast", paired_differences(
        contrast, "applied", "measured", "Early infarct vs mirrored side (synthetic)",
        "darkening applied (HU)", "lesion minus mirror, measured (HU)"))
else:
    for key in ("ct_contrast_median", "ct_contrast_n"):
        glue(key, "-", display=False)
    glue("fig_ct_contrast", Markdown("*Measured on the embedded cohort only.*"), display=False)

# %% [markdown]
# ```{glue:figure} fig_ct_contrast
# :name: fig-00-ct-contrast
# :alt: Scatter plot of the measured lesion-minus-mirror HU difference against the darkening applied, one point per synthetic ischaemic subject, below the identity line.
#
# Early infarct minus its mirror image across the midline, measured in the written
# DICOM files, against the darkening the generator applied; the dashed line is identity.
# ```
#
# Over {glue:text}`ct_contrast_n` synthetic ischaemic subjects the infarct is a median
# {glue:text}`ct_contrast_median` its mirror image: partial volume of 5 mm
# slices and noise blur the applied difference, which is why early CT signs are hard
# for readers and models alike.
#
# ### The head around the brain
#
# A reader looks past the brain too. The embedded CT has a skull whose thickness and
# density vary by subject, a skull base with the sphenoid sinus and the mastoid air cells,
# orbits with fat and globes, scalp fat, a beam-hardening band between the petrous bones,
# and the physiological calcifications that mimic blood: the pineal gland and the choroid
# plexus in most adults, the basal ganglia in a few (rates in the realism table below).

# %%
if synthetic:
    quiet = ct[(ct.stroke_type == "none") & ct.calcifications.fillna("").str.contains("pineal")]
    head_row = (quiet if len(quiet) else ct).iloc[0]
    head_files = read_subject(cohort.root, head_row.patient_id)
    inside = np.stack([ndimage.binary_fill_holes(k) for k in np.moveaxis(head_files.hu > -300, 2, 0)], 2)
    air_cells = (inside & (head_files.hu < -500)).sum((0, 1))
    spacing = np.sqrt((head_files.affine[:3, :3] ** 2).sum(0))
    deep = ndimage.distance_transform_edt(head_files.brain, sampling=spacing) > 10.0  # as the realism table
    dense = (deep & (head_files.hu > 100)).sum((0, 1))
    head_slices = [(int(np.argmax(air_cells)), "skull base: air cells"),
                   (int(np.argmax(dense)), "calcifications")]
    glue_figure("fig_head", ct_slices(
        [(f"{head_row.patient_id}, slice {k}\n{what}", head_files.hu[:, :, k], None) for k, what in head_slices],
        [WINDOWS["brain"], WINDOWS["subdural"], WINDOWS["bone"]],
        f"The head around the brain: one {tag} subject without a stroke"))
else:
    glue("fig_head", Markdown("*Shown on the embedded cohort only.*"), display=False)

# %% [markdown]
# ```{glue:figure} fig_head
# :name: fig-00-head
# :alt: Two axial CT slices of one synthetic subject without a stroke in brain, subdural and bone windows: a low slice with the sinus and mastoid air cells, orbits and skull base, and a slice with bright pineal and choroid-plexus calcifications.
#
# One subject without a stroke: the slice with the most air enclosed by the head (top)
# and the slice with the most voxels above 100 HU more than 10 mm inside the brain
# (bottom), in the
# brain, subdural and bone windows. What is bright deep in the brain on the bottom row
# is physiological calcification (pineal gland or choroid plexus), not blood: a detector
# of "the brightest voxel" finds it first (the brightest-voxel baseline below).
# ```
#
# ## DWI and ADC
#
# On diffusion MRI an acute infarct is expected bright on the b1000 trace and dark on the
# ADC map (restricted diffusion); an old infarct the other way round on ADC, since its
# cavity holds CSF; a haematoma mixed. The table below measures each in this cohort's
# files, as the median of each lesion's mean over that of the rest of the brain, and
# {numref}`fig-00-dwi` shows one subject of each. Display ranges come from the brain
# itself, not from the volume's brightest voxels: b1000 from 0 to twice the brain's
# median, so normal tissue is mid-grey and a lesion half as bright again stands out
# near white; ADC from 0 to 2.5 times its median, so CSF is white.

# %%
dwi = table[table.modality == "DWI"]
if "stroke_type" in dwi:
    isch = dwi[dwi.stroke_type == "ischaemic"]
    acute = isch[isch.lesion_volume_ml > 5].head(1)
    old = isch[(isch.old_infarct_ml > 1) & ~isch.patient_id.isin(acute.patient_id)].head(1)
    dwi_picks = [(acute, "acute infarct", (1,)), (old, "old infarct", (2,)),
                 (dwi[(dwi.stroke_type == "haemorrhagic") & (dwi.lesion_volume_ml > 5)].head(1),
                  "haemorrhage", (3,))]
else:
    dwi_picks = [(dwi.sort_values("nihss", ascending=False).head(3), "highest NIHSS", (1, 3))]
dwi_rows = []
for picked, shown, focus in dwi_picks:
    for _, r in picked.iterrows():
        image, adc = read_nifti(r.image).data, read_nifti(r.adc).data
        mask = read_nifti(r["mask"]).data if isinstance(r.get("mask"), str) else np.zeros_like(image)
        dwi_rows.append((f"{r.patient_id} site {r.site}\n{shown}", image, adc, mask, focus))
glue_figure("fig_dwi", dwi_adc(dwi_rows, f"DWI b1000 and ADC of {tag} subjects"))
contrast_table = lesion_contrast(dwi, LESION_STYLES) if "mask" in dwi else pd.DataFrame()
for name, key in (("acute infarct", "acute"), ("old infarct", "old"), ("haemorrhage", "haem")):
    row = contrast_table.loc[name] if name in contrast_table.index and contrast_table.loc[name, "subjects"] else None
    glue(f"dwi_{key}", f"{row['DWI b1000 / normal brain']:.2f}" if row is not None else "not measured", display=False)
    glue(f"adc_{key}", f"{row['ADC / normal brain']:.2f}" if row is not None else "not measured", display=False)
display(contrast_table.rename_axis(f"lesion ({tag} cohort)") if len(contrast_table) else
        Markdown(f"{dataset} has no lesion masks: lesion contrast is not measured."))

# %% [markdown]
# ```{glue:figure} fig_dwi
# :name: fig-00-dwi
# :alt: DWI b1000 and ADC slices of three subjects with colour bars; an acute infarct outlined in yellow is bright on DWI and dark on ADC, an old infarct outlined in blue is dark on DWI and bright on ADC, and a haemorrhage is outlined in orange.
#
# DWI b1000 (left) and ADC (right) of three subjects, each on the slice with most of the
# lesion named on its row (an acute infarct, an old infarct, a haemorrhage), with colour bars
# (ADC in 10⁻⁶ mm²/s). Outlines: acute infarct yellow, old infarct blue, haemorrhage
# orange. R and L mark the patient's right and left.
# ```
#
# Measured over the cohort (table above), an acute infarct is {glue:text}`dwi_acute`
# times as bright as the rest of the brain on b1000 and has {glue:text}`adc_acute` times
# its ADC; an old infarct {glue:text}`dwi_old` and {glue:text}`adc_old`; a haemorrhage
# {glue:text}`dwi_haem` and {glue:text}`adc_haem`.
#
# ### CT and DWI: two acquisitions
#
# A patient's CT and MRI are taken apart, on two scanners: the head lies differently, the
# fields of view differ, and the DWI is an echo-planar image, shifted along its
# phase-encoding axis (front to back) where the air of the sinuses and mastoids makes
# the magnetic field uneven. The embedded cohort writes them so: each on its own grid
# with its own masks, a b0 beside the b1000 trace, and the ADC computed from the two as
# a scanner does. Below, the CT of one subject is carried onto its DWI through the two
# recorded head positions (the rigid registration a reader would run); what is left over
# is the EPI distortion.

# %%
if synthetic:
    measured = measure_subjects(cohort.root)
    shown = measured.sort_values("dwi_epi_shift_mm", ascending=False).participant_id.iloc[0]
    files = read_subject(cohort.root, shown)
    hu_on_dwi = ct_on_dwi(files, files.hu, order=1)
    brain_on_dwi = ct_on_dwi(files, files.brain.astype(np.float32), order=1)
    wrong, brain_voxels = outline_misfit_by_slice(files)
    with_brain = np.flatnonzero(brain_voxels > 50)
    lower = with_brain[: len(with_brain) // 3]
    worst = int(lower[np.argmax(wrong[lower] / brain_voxels[lower])])
    picks = [(worst, "near the skull base"), (int(with_brain[(4 * len(with_brain)) // 6]), "high, away from it")]
    glue_figure("fig_acquisitions", two_acquisitions(
        [(f"{shown}, slice {k}\n{where}", hu_on_dwi[:, :, k], files.b0[:, :, k], files.dwi[:, :, k],
          files.adc[:, :, k], brain_on_dwi[:, :, k]) for k, where in picks],
        f"The CT and DWI of one {tag} subject, on the DWI's grid"))
    low, high = measured.outline_misfit_low.to_numpy(), measured.outline_misfit_high.to_numpy()

    glue("misfit_low", format_interval(*median_ci(100 * low, seed=seed)) + " %", display=False)
    glue("misfit_high", format_interval(*median_ci(100 * high, seed=seed)) + " %", display=False)
    gap = median_ci(100 * (low - high), seed=seed)
    glue("misfit_compared", "so the misfit is larger near the skull base" if gap[1] > 0 else
         "so this cohort does not show the misfit larger near the skull base", display=False)
    glue("epi_shift", f"{np.median(measured.dwi_epi_shift_mm):.1f} mm (range {measured.dwi_epi_shift_mm.min():.1f}-"
         f"{measured.dwi_epi_shift_mm.max():.1f})", display=False)
    old_rows = measured.dropna(subset=["old_trace_ratio", "old_adc_only_ratio"])
    glue("shine_through", f"{np.median(old_rows.old_trace_ratio):.2f} times the healthy cortex's trace where "
         f"its ADC alone predicts {np.median(old_rows.old_adc_only_ratio):.2f} (medians, n = {len(old_rows)})"
         if len(old_rows) else "not measurable here (no old infarct)", display=False)
else:
    measured = None
    glue("fig_acquisitions", Markdown("*Shown on the embedded cohort only.*"), display=False)
    for key in ("misfit_low", "misfit_high", "misfit_compared", "epi_shift", "shine_through"):
        glue(key, "-", display=False)

# %% [markdown]
# ```{glue:figure} fig_acquisitions
# :name: fig-00-acquisitions
# :alt: One synthetic subject's CT carried onto its DWI grid, with its b0, b1000 trace and ADC, on a low and a high slice; a purple outline of the CT's brain lies on each DWI image.
#
# One subject's CT, carried onto its DWI grid through the two recorded head positions,
# beside its b0, b1000 trace and ADC, on a slice near the skull base (top row) and a high
# one (bottom row). The purple line is the CT's brain outline carried the same way. The
# subject shown is the cohort's most distorted one (largest recorded EPI shift), and the
# low slice is the one of its lower third where the outlines disagree most.
# ```
#
# Over the synthetic cohort, the CT's registered brain and the DWI's brain disagree on
# {glue:text}`misfit_low` of the brain's voxels in the lowest third of the slices and on
# {glue:text}`misfit_high` in the highest third (medians over subjects, bootstrap
# intervals), {glue:text}`misfit_compared`. Part of the misfit everywhere is only
# resampling 3-4 mm pixels twice. The generator's record gives the peak EPI shift inside
# the brain as {glue:text}`epi_shift`. On the trace an old infarct is
# {glue:text}`shine_through`: it stays brighter than its high ADC alone would make it,
# the T2 shine-through of long-T2 tissue, so a reader checks the ADC before calling a
# bright spot acute.

# %% [markdown]
# ## How realistic is it?
#
# Every figure below is measured from the written files with plain pydicom and nibabel,
# beside the value reported for patients and its source. Then the simplest non-deep
# baselines (lesion volume, the brightest HU of the brain) against each label's oracle
# ceiling: a network earns its place only by beating them.

# %%
if synthetic:
    realism = realism_table(cohort.root, measured).set_index("measure")
    realism.columns.name = "synthetic cohort"
    display(realism)
    baselines = baseline_table(cohort.root, measured)
    baselines.columns.name = "synthetic cohort"
    display(baselines.round(3))
    big = measured[(measured.stroke_type == "haemorrhagic") & (measured.acute_lesion_ml >= 20)].dropna(
        subset=["ventricle_shift_mm"])
    per_ml = (big.ventricle_shift_mm / big.acute_lesion_ml).to_numpy()
    literature = f"{SHIFT_MM_PER_ML[0]:g}-{SHIFT_MM_PER_ML[1]:g} mm per ml reported in patients"
    if len(per_ml) >= 3:
        median, ci_low, ci_high = median_ci(per_ml, seed=seed)
        glue("shift_per_ml", f"{format_interval(median, ci_low, ci_high)} mm per ml of haematoma "
             f"(median, n = {len(per_ml)})", display=False)
        glue("shift_compared", f"its interval lies below the {literature}: the cohort's haematomas push less than "
             "a patient's" if ci_high < SHIFT_MM_PER_ML[0] else f"its interval lies above the {literature}: the "
             "cohort's haematomas push more than a patient's" if ci_low > SHIFT_MM_PER_ML[1] else
             f"its interval overlaps the {literature}", display=False)
    else:
        glue("shift_per_ml", f"an amount this cohort cannot measure ({len(per_ml)} such haematomas)", display=False)
        glue("shift_compared", f"patients show {literature}", display=False)
    shifts = measured[measured.stroke_type != "none"].dropna(subset=["ventricle_shift_mm"])
    small = shifts[shifts.acute_lesion_ml < 5].ventricle_shift_mm
    noise = np.percentile(small, [5, 95]) if len(small) >= 10 else np.array([np.nan, np.nan])
    glue("shift_noise", f"{noise[0]:.1f} to {noise[1]:.1f} mm (5th to 95th percentile, n = {len(small)})"
         if len(small) >= 10 else f"too few to say ({len(small)})", display=False)
    large = shifts[(shifts.stroke_type == "ischaemic") & (shifts.acute_lesion_ml >= 50)].ventricle_shift_mm
    glue("infarct_shift", "cannot be shown: no infarct has 50 ml or more" if large.empty else
         f"by at most {large.max():.1f} mm (n = {len(large)}), "
         + ("within that noise" if large.max() <= noise[1] else "beyond that noise"), display=False)
    glue_figure("fig_mass_effect", mass_effect(measured, SHIFT_MM_PER_ML,
                                               f"Mass effect, measured in the written files ({tag})"))
else:
    display(Markdown(f"{dataset} is real data: the realism of the embedded cohort does not apply."))
    for key in ("shift_per_ml", "shift_compared", "shift_noise", "infarct_shift"):
        glue(key, "-", display=False)
    glue("fig_mass_effect", Markdown("*Measured on the embedded cohort only.*"), display=False)

# %% [markdown]
# ```{glue:figure} fig_mass_effect
# :name: fig-00-mass-effect
# :alt: Scatter plot of ventricle shift against acute lesion volume, one point per synthetic stroke subject coloured by stroke type, over a grey band of the shift reported per ml of haematoma.
#
# Mass effect: the shift of the lateral ventricles away from the lesion's side (the
# tissue map carried back into template space) against the acute lesion's volume in its
# mask, one point per stroke subject, measured in the written files. The grey band is
# the shift reported per ml of haematoma in patients (Yang et al., Neurocrit Care 2017),
# drawn up to the largest haematoma.
# ```
#
# In the synthetic cohort, haematomas of 20 ml or more shift the ventricles by
# {glue:text}`shift_per_ml`; {glue:text}`shift_compared`. Lesions under 5 ml, too small
# to push anything, scatter from {glue:text}`shift_noise`: the measurement's own noise.
# Infarcts of 50 ml or more shift the ventricles {glue:text}`infarct_shift`; these are
# baseline scans, and an infarct's swelling peaks days after onset.
#
# ## When a scan is bad
#
# Real data is never clean. Below we copy four subjects and damage them the way real
# data goes wrong: a DICOM file cut in half, a series with a missing slice, an ADC map
# with NaN voxels, a DWI written in LPS orientation, and one CT whose files still carry
# a patient name. The loaders skip what cannot be used, repair what can be repaired,
# and list both; the other subjects load. The patient name appears nowhere: only the
# pseudonymous folder name enters the table.

# %%
if synthetic:
    scratch = Path(tempfile.mkdtemp(prefix="damaged-", dir=data_dir()))
    ids = faults.copy_subjects(cohort.root, scratch, 4)
    ct_dir = scratch / "sourcedata" / "ct"
    faults.truncate_file(sorted((ct_dir / ids[0] / "NCCT_HEAD").glob("*.dcm"))[3])
    faults.drop_slice(ct_dir / ids[1] / "NCCT_HEAD")
    faults.add_nans(scratch / ids[2] / "dwi" / f"{ids[2]}_rec-ADC_dwi.nii.gz")
    faults.reorient_to_lps(scratch / ids[3] / "dwi" / f"{ids[3]}_rec-TRACE_dwi.nii.gz")
    faults.set_patient_name(ct_dir / ids[3] / "NCCT_HEAD", faults.EXAMPLE_PATIENT_NAME)
    damaged_dwi = load_soop(scratch, site="copy")
    damaged_ct = load_ct_series_folders(ct_dir, "*/NCCT_HEAD")
    rejects = pd.concat([damaged_dwi.rejects, damaged_ct.rejects], ignore_index=True)
    rejects["file"] = [str(Path(f).relative_to(scratch)) for f in rejects.file]
    loaded = pd.concat([damaged_dwi.table, damaged_ct.table])
    glue("n_loaded_after_damage", len(loaded), display=False)
    shutil.rmtree(scratch)
    display(rejects)
else:
    glue("n_loaded_after_damage", "-", display=False)
    # file names only: a real dataset's folders may carry the IDs its loader replaced by pseudonyms
    display(cohort.rejects.assign(file=[Path(f).name for f in cohort.rejects.file]))

# %% [markdown]
# Of the eight scans of the damaged copy, {glue:text}`n_loaded_after_damage` still load;
# the table above says which file failed and why.
#
# ## Design, ethics, protocol and registration
#
# Each paper chapter is a retrospective re-analysis: it re-implements a published model and
# evaluates it on data that already exist, the embedded cohort or a public dataset, and
# recruits no one. The embedded cohort is generated, so no person's data, consent or
# ethics approval is involved; a public dataset is used under its own licence and the
# approvals its release states (its manifest names the licence). No protocol was written
# or registered before the runs: the chapters, their parameters and their run records
# are the whole method, and re-executing one repeats it. Patients and the public were not
# involved in the design.
#
# ## Real public datasets
#
# Each dataset has a manifest in `data_manifests/`: its source, licence, citation, layout
# and which chapters can use it. `python -m stroke_lib data check NAME PATH` says what is
# present in a downloaded copy and names every missing file.

# %%
manifest_table()[["dataset", "title", "modality", "subjects", "licence", "chapters"]]

# %% [markdown]
# ## Try it yourself
#
# - `-p n_subjects 400` or `-p in_plane 128`: a bigger or sharper embedded cohort
#   (generated once, then cached by its parameters).
# - `-p seed 1`: another cohort from the same model.
# - `-p dataset soop`: read the real SOOP data from `<data directory>/soop` (or from
#   the folder `-p data_root` names) instead.
#
# ## Versions this chapter ran with

# %%
pd.Series(versions(), name="version").to_frame()
