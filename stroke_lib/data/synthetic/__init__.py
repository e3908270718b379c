"""The embedded cohort: a realistic synthetic stroke cohort written as real files.

``generate_cohort(CohortSpec(...))`` writes, under the data directory, a BIDS dataset in
the layout of SOOP (OpenNeuro ds004889) plus a DICOM CT series per subject::

    participants.tsv                       participant_id, age, sex, nihss, site
    sub-0001/dwi/sub-0001_rec-TRACE_dwi.nii.gz, sub-0001_rec-ADC_dwi.nii.gz
    sub-0001/dwi/sub-0001_rec-TRACE_dwi.json, sub-0001_rec-ADC_dwi.json   (BIDS sidecars, units)
    sourcedata/ct/sub-0001/NCCT_HEAD/IM0001.dcm ...
    derivatives/masks/sub-0001/sub-0001_desc-lesion_mask.nii.gz   lesion labels:
        1 acute infarct, 2 old infarct, 3 haemorrhage, 4 perihaematomal oedema
        (chapters count 1 and 3 as the acute lesion; 4 is new and counts as no lesion)
    derivatives/masks/sub-0001/sub-0001_desc-aspects_dseg.nii.gz  (regions 1..20)
    derivatives/masks/sub-0001/sub-0001_desc-tissue_dseg.nii.gz   pure-tissue voxels:
        1 CSF, 2 cortical grey, 3 white matter, 4 deep grey nuclei, 5 internal capsule
    derivatives/masks/desc-{lesion,tissue}_dseg.tsv  the label values and their names
    derivatives/labels.tsv                 every label and its latent risk
    derivatives/geometry/sub-0001.json     subject <- template transform
    derivatives/oracle.json                each label's oracle ceiling (AUC; null if undefined)

CT and DWI of a subject share one scanner grid, so the masks fit both. A subject's
anatomy, lesions and labels depend on (seed, subject index) only, never on ``in_plane``.
A finished cohort is cached by its parameters and never regenerated.

Modules: ``population`` (sites, clinical draws, HT intercept), ``labels`` (the label model
and ``model_table()``), ``atlas`` (template anatomy), ``subject`` (patient draw and
rendering), ``writers`` (DICOM, NIfTI, sidecars), ``realism`` (``realism_table`` and
``baseline_table``, measured from the written files).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from stroke_lib.data.synthetic.atlas import load_atlas, region_names, voxel_world
from stroke_lib.data.synthetic.labels import HT_BASE_RATE
from stroke_lib.data.synthetic.population import ht_intercept
from stroke_lib.data.synthetic.subject import (
    LESION_LABELS,
    SITES,
    TISSUE_LABELS,
    generate_subject,
)
from stroke_lib.data.synthetic.writers import (
    ras_affine,
    write_ct_series,
    write_dwi_sidecars,
    write_nifti,
)
from stroke_lib.paths import data_dir

__all__ = ["CohortSpec", "generate_cohort", "cohort_path", "oracle_ceilings", "mirror_voxels",
           "mirror_contrast"]

DONE_MARKER = "COHORT_COMPLETE"


@dataclass(frozen=True)
class CohortSpec:
    """Parameters of the embedded cohort.

    Attributes:
        n_subjects: number of subjects (one CT and one DWI/ADC each).
        in_plane: pixels per side of each axial slice (64 smoke, 256 full).
        sites: site name -> share of subjects; names are keys of ``SITES``.
        seed: the cohort seed; with a subject's index it fixes every draw.
        ht_base_rate: expected share of ischaemic subjects with haemorrhagic
            transformation (``labels.HT_BASE_RATE``: a population rate; 0.5 mimics CTNet's
            1:1 matched sample).
    """

    n_subjects: int = 120
    in_plane: int = 64
    sites: dict[str, float] = field(default_factory=lambda: {"A": 0.7, "B": 0.3})
    seed: int = 0
    ht_base_rate: float = HT_BASE_RATE

    def key(self) -> str:
        """Folder name: readable parameters plus a hash of all of them and of the
        generator's source, so a changed generator never reuses an old cohort."""
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode())
        for source in sorted(Path(__file__).parent.glob("*.py")):
            digest.update(source.read_bytes())
        return f"synthetic-n{self.n_subjects}-px{self.in_plane}-seed{self.seed}-{digest.hexdigest()[:8]}"


def cohort_path(spec: CohortSpec) -> Path:
    """Where the cohort of ``spec`` lives under the data directory."""
    return data_dir() / "cohorts" / spec.key()


def _site_of_each(spec: CohortSpec) -> list[str]:
    unknown = set(spec.sites) - set(SITES)
    if unknown:
        raise ValueError(f"unknown site(s) {sorted(unknown)}; known: {sorted(SITES)}")
    names = list(spec.sites)
    p = np.array([spec.sites[n] for n in names], float)
    rng = np.random.default_rng([spec.seed, 7_777_777])
    return [str(s) for s in rng.choice(names, size=spec.n_subjects, p=p / p.sum())]


def _write_subject(args: tuple[int, str, CohortSpec, Path]) -> dict[str, object]:
    index, site, spec, root = args
    sub = generate_subject(index, spec.seed, site, spec.in_plane, load_atlas(), spec.ht_base_rate)
    pid = f"sub-{index + 1:04d}"
    affine = ras_affine(sub.spacing, sub.origin)
    dwi_dir = root / pid / "dwi"
    write_nifti(dwi_dir / f"{pid}_rec-TRACE_dwi.nii.gz", sub.dwi, affine)
    write_nifti(dwi_dir / f"{pid}_rec-ADC_dwi.nii.gz", sub.adc, affine)
    write_dwi_sidecars(dwi_dir, pid, site)
    masks = root / "derivatives" / "masks" / pid
    write_nifti(masks / f"{pid}_desc-lesion_mask.nii.gz", sub.lesion, affine)
    write_nifti(masks / f"{pid}_desc-aspects_dseg.nii.gz", sub.regions, affine)
    write_nifti(masks / f"{pid}_desc-tissue_dseg.nii.gz", sub.tissue, affine)
    write_ct_series(
        root / "sourcedata" / "ct" / pid / "NCCT_HEAD",
        sub.ct_hu,
        sub.spacing,
        sub.origin,
        patient_id=pid,
        uid_key=f"{spec.key()}/{pid}",
        site=site,
        age=float(sub.record["age"]),
        sex=str(sub.record["sex"]),
    )
    geo = root / "derivatives" / "geometry" / f"{pid}.json"
    geo.parent.mkdir(parents=True, exist_ok=True)
    geo.write_text(json.dumps(sub.geometry, indent=1))
    return {"participant_id": pid, **sub.record}


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    ok = ~(np.isnan(y) | np.isnan(score))
    y, score = y[ok], score[ok]
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, score))


def oracle_ceilings(labels: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """AUC of each label's true latent risk: the best any model could reach.

    Keys: ``non_minor`` (stroke subjects, NIHSS latent), ``ht`` (ischaemic subjects, true
    HT probability, which includes unseen thrombolysis), ``region_early`` (every region
    of ischaemic subjects, true infarct share). Each has ``all`` and one entry per site;
    an AUC that is undefined (one class only) is ``None`` (``null`` in JSON).
    """
    out: dict[str, dict[str, float]] = {}
    groups = {"all": labels, **{f"site {s}": g for s, g in labels.groupby("site")}}
    for name, g in groups.items():
        stroke = g[g.stroke_type != "none"]
        isch = g[g.stroke_type == "ischaemic"]
        frac = isch[[f"region_frac_{r}" for r in region_names()]].to_numpy(float).ravel()
        early = (isch[[f"region_{r}" for r in region_names()]].to_numpy() == "early").ravel()
        out.setdefault("non_minor", {})[name] = _auc(
            (stroke.severity == "non-minor").to_numpy(float), stroke.nihss_latent.to_numpy(float)
        )
        out.setdefault("ht", {})[name] = _auc(isch.ht.to_numpy(float), isch.ht_risk.to_numpy(float))
        out.setdefault("region_early", {})[name] = _auc(early.astype(float), frac)
    return {k: {g: (None if np.isnan(v) else v) for g, v in d.items()} for k, d in out.items()}


def generate_cohort(
    spec: CohortSpec = CohortSpec(),
    root: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate the cohort of ``spec`` unless it exists; return its folder.

    Args:
        spec: cohort parameters.
        root: output folder; default ``cohort_path(spec)``.
        workers: processes; default the number of CPU cores.
        progress: show a tqdm bar on a terminal (never in a notebook, whose page would
            keep every update of it).
    """
    root = Path(root) if root is not None else cohort_path(spec)
    if (root / DONE_MARKER).exists():
        return root
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    load_atlas()  # built once in the parent; forked workers inherit it
    ht_intercept(spec.ht_base_rate)  # likewise the HT intercept of the base rate
    jobs = [(i, s, spec, partial) for i, s in enumerate(_site_of_each(spec))]
    workers = workers or os.cpu_count() or 1
    bar = dict(total=len(jobs), desc="embedded cohort", unit="subject",
               disable=None if progress else True)  # None: only on a terminal
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            records = list(tqdm(pool.map(_write_subject, jobs), **bar))
    else:
        records = [_write_subject(j) for j in tqdm(jobs, **bar)]
    labels = pd.DataFrame.from_records(records)
    labels[["participant_id", "age", "sex", "nihss", "site"]].to_csv(
        partial / "participants.tsv", sep="\t", index=False
    )
    labels.to_csv(partial / "derivatives" / "labels.tsv", sep="\t", index=False)
    (partial / "derivatives" / "oracle.json").write_text(
        json.dumps(oracle_ceilings(labels), indent=1, sort_keys=True, allow_nan=False)
    )
    for name, table in (("lesion", LESION_LABELS), ("tissue", TISSUE_LABELS)):
        pd.DataFrame({"index": list(table), "name": list(table.values())}).to_csv(
            partial / "derivatives" / "masks" / f"desc-{name}_dseg.tsv", sep="\t", index=False
        )
    (partial / "dataset_description.json").write_text(
        json.dumps(
            {
                "Name": "Embedded synthetic stroke cohort (synthetic data, not patients)",
                "BIDSVersion": "1.9.0",
                "DatasetType": "raw",
                "GeneratedBy": [{"Name": "stroke_lib.data.synthetic", "Parameters": asdict(spec)}],
            },
            indent=1,
            sort_keys=True,
        )
    )
    (partial / DONE_MARKER).write_text(json.dumps(asdict(spec), sort_keys=True))
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return root


def mirror_voxels(affine: np.ndarray, shape: tuple[int, int, int], geometry: dict) -> np.ndarray:
    """Index (3, X, Y, Z) of each voxel's mirror image across the subject's midline.

    The midsagittal plane is the template's x = 0 carried by the subject's pose (the
    file ``derivatives/geometry/sub-*.json``); the mild elastic part of the warp
    (about 2 mm) is ignored. Indices are rounded and clipped to the grid.

    Args:
        affine: voxel -> RAS mm of the image (a loader's ``Volume.affine``).
        shape: the image shape (X, Y, Z).
        geometry: the subject's geometry record with ``subject_from_template``.
    """
    pose = np.asarray(geometry["subject_from_template"], float)
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    m = np.linalg.inv(affine) @ pose @ flip @ np.linalg.inv(pose) @ affine
    idx = np.rint(voxel_world(m, shape)).astype(int)
    return np.stack([np.clip(i, 0, s - 1) for i, s in zip(idx, shape)])


def mirror_contrast(
    image: np.ndarray,
    affine: np.ndarray,
    mask: np.ndarray,
    geometry: dict,
    valid: tuple[float, float] = (-np.inf, np.inf),
) -> float:
    """Mean of ``image`` inside ``mask`` minus its mean at the mirrored voxels.

    Pairs whose mirror voxel is itself in the mask, or whose mirror value lies outside
    ``valid`` (say 10-60 HU, to drop skull and CSF), are left out. NaN if no pair is left.

    Args:
        image, mask: (X, Y, Z) arrays on one grid with voxel -> RAS ``affine``.
        geometry: the subject's ``derivatives/geometry/sub-*.json`` record.
    """
    mirror = mirror_voxels(affine, image.shape, geometry)
    inside = mask.astype(bool)
    mi = tuple(m[inside] for m in mirror)
    other = image[mi]
    keep = ~inside[mi] & (other >= valid[0]) & (other <= valid[1])
    if not keep.any():
        return float("nan")
    return float(image[inside][keep].mean() - other[keep].mean())
