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
# **What you will learn**
# - what data each of the four papers used, and which of it anyone can download;
# - how the embedded cohort that every chapter runs on by default is made, and what its
#   labels mean (the causal model behind them, and the best AUC any model could reach);
# - how CT windows change what an early infarct looks like;
# - what happens to a scan that cannot be read: it is skipped and listed, and the rest
#   of the cohort loads.
#
# Everything in this chapter that is measured on the embedded cohort is **synthetic**:
# made from the MNI152 template, not from patients.

# %% tags=["parameters"]
profile = "auto"  # "smoke" | "full" | "auto" (full on CUDA, smoke otherwise)
dataset = "synthetic"  # "synthetic" or a manifest name with a loader (soop, isles_2022, cq500)
data_root = ""  # folder of a real dataset; unused for "synthetic"
device = "auto"
seed = 0
n_subjects = 0  # 0: the profile's default
in_plane = 0  # 0: the profile's default (pixels per side of an axial slice)

# %%
import json
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue

from stroke_lib.book import show_parameters
from stroke_lib.data import CohortSpec, load_dataset, read_ct_series, read_nifti
from stroke_lib.data import faults
from stroke_lib.data.cohort import load_ct_series_folders, load_soop
from stroke_lib.data.manifests import manifest_table
from stroke_lib.data.synthetic import mirror_contrast
from stroke_lib.data.synthetic.labels import model_table
from stroke_lib.paths import data_dir
from stroke_lib.plots import ct_windows, dwi_adc, label_distributions, paired_differences
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
show_parameters(profile=run.profile, dataset=dataset, data_root=data_root or "-",
                device=run.device, seed=seed, n_subjects=spec.n_subjects,
                in_plane=spec.in_plane, data_dir=data_dir().name)

# %% [markdown]
# ## What the papers used, and what is public
#
# | paper | task | data | public? |
# |---|---|---|---|
# | 000 TRACT-NET (Oh et al. 2026) | minor vs non-minor stroke (NIHSS) from DWI | 273 patients, Asan Medical Center (3-fold CV); 1,106 SOOP patients (external) | AMC private; **SOOP public** (OpenNeuro ds004889, CC0) |
# | 001/003 CTNet (Zhang et al. 2026) | haemorrhagic transformation from NCCT | 474 patients, 611-613 CT scans, Beijing Tiantan Hospital; 5 mm slices cropped to 28 | private; no public CT set with HT labels was found |
# | 002 Waghmare et al. | ischaemic vs haemorrhagic on CT and MRI | "[X] CT scans and [Y] MRI scans": the counts are placeholders in the paper | nothing to download; public stand-ins: RSNA ICH 2019, CQ500, TEKNOFEST 2021 |
# | 004 Jung & Whangbo | ischaemic stroke regions on NCCT, adaptive transfer | 356 patients, 16,376 2D images split by image; 40-50 slices each | private; public stand-in: AISD (397 NCCT with infarct masks) |
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
# an acute infarct is 2-6 HU darker than normal tissue on CT (paper 004, section 2.4),
# bright on DWI and dark on ADC; an old infarct is CSF-like; a haemorrhage is 55-85 HU with
# perihaematomal oedema. The CT is written as a real DICOM series (5 mm slices, int16 with
# RescaleSlope/RescaleIntercept); DWI and ADC as BIDS NIfTI in SOOP's layout. Site B
# differs from site A in noise, contrast, slice count, field of view and case mix.

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
# at NIHSS ≤ 3 (Fischer et al., Stroke 2010; paper 000 does not give its cut-off).
# Haemorrhagic transformation (ischaemic subjects only) depends on infarct volume, the
# hyperdense artery sign, leukoaraiosis, age and thrombolysis, which no image shows.
# A region is rated *early ischaemic sign* when the acute infarct covers more than a
# rater's threshold of it.

# %%
pd.DataFrame(model_table()).set_index(["label", "term"])

# %% [markdown]
# The **oracle ceiling** of a label is the AUC of its true latent risk against the drawn
# label: the best any model could do on this cohort (for HT the latent risk includes the
# unseen thrombolysis, so an image-only model stays further below it).

# %%
if synthetic:
    oracle = json.loads((cohort.root / "derivatives" / "oracle.json").read_text())
    oracle_table = pd.DataFrame(oracle).T.round(3)
    oracle_table.index.name = "label (synthetic cohort)"
    glue("oracle_nonminor", f"{oracle['non_minor']['all']:.3f}", display=False)
    glue("oracle_ht", f"{oracle['ht']['all']:.3f}", display=False)
    display(oracle_table)

# %% [markdown]
# On this synthetic cohort the best possible AUC is {glue:text}`oracle_nonminor` for
# minor vs non-minor stroke and {glue:text}`oracle_ht` for haemorrhagic transformation.

# %%
fig = label_distributions(table[table.modality == "CT"], f"Label distributions per site ({tag} cohort)")

# %% [markdown]
# ## CT windows
#
# An early infarct is only a few HU darker than healthy tissue. In the standard brain
# window (centre 40, width 80) that is a 3-8 % change of grey level; the narrow windows
# that paper 004 proposes (width 30 and 20 around 40 HU) stretch it.

# %%
ct = table[table.modality == "CT"]
if "stroke_type" in ct:
    picks = pd.concat([
        ct[(ct.stroke_type == "ischaemic") & (ct.lesion_volume_ml > 5)].head(2),
        ct[ct.stroke_type == "haemorrhagic"].head(1),
        ct[ct.stroke_type == "none"].head(1),
    ])
else:
    picks = ct.head(3)
rows = []
for _, r in picks.iterrows():
    hu = read_ct_series(r.image).data
    mask = read_nifti(r["mask"]).data if "mask" in r and isinstance(r["mask"], str) else np.zeros_like(hu)
    label = f"{r.patient_id} site {r.site}\n{r.get('stroke_type', '')} {r.get('territory', '')}"
    rows.append((label, hu, mask))
windows = [WINDOWS["brain"], WINDOWS["stroke_narrow"], WINDOWS["stroke_narrowest"]]
fig = ct_windows(rows, windows, f"NCCT of {tag} subjects in three windows, lesion outlined")

# %% [markdown]
# How dark is an early infarct, really? For every ischaemic subject we compare the mean
# HU inside the infarct with the mirror-image voxels across the midline (skull and CSF
# left out) and set that against the darkening the generator applied.

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
    glue("ct_contrast_median", f"{contrast.measured.median():.1f}", display=False)
    glue("ct_contrast_n", len(contrast), display=False)
    fig = paired_differences(contrast, "applied", "measured",
                             "Early infarct vs mirrored side (synthetic)",
                             "darkening applied (HU)", "lesion minus mirror, measured (HU)")

# %% [markdown]
# Over {glue:text}`ct_contrast_n` synthetic ischaemic subjects the infarct is a median
# {glue:text}`ct_contrast_median` HU below its mirror image: partial volume of 5 mm
# slices and noise blur the applied difference, which is why early CT signs are hard
# for readers and models alike.
#
# ## DWI and ADC
#
# On diffusion MRI the same infarcts are obvious: bright on the b1000 trace, dark on ADC.

# %%
dwi_rows = []
for _, r in table[(table.modality == "DWI")].loc[lambda d: d.patient_id.isin(picks.patient_id)].iterrows():
    mask = read_nifti(r["mask"]).data if isinstance(r.get("mask"), str) else None
    dwi, adc = read_nifti(r.image).data, read_nifti(r.adc).data
    dwi_rows.append((f"{r.patient_id} site {r.site}", dwi, adc, mask if mask is not None else np.zeros_like(dwi)))
fig = dwi_adc(dwi_rows, f"DWI and ADC of {tag} subjects, lesion outlined")

# %% [markdown]
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
    display(cohort.rejects)

# %% [markdown]
# Of the eight scans of the damaged copy, {glue:text}`n_loaded_after_damage` still load;
# the table above says which file failed and why.
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
# - `-p dataset soop -p data_root /data/soop`: read the real SOOP data instead.
#
# ## Versions this chapter ran with

# %%
pd.Series(versions(), name="version").to_frame()
