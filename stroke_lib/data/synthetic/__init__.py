"""The embedded cohort: a realistic synthetic stroke cohort written as real files.

``generate_cohort(CohortSpec(...))`` writes, under the data directory, a BIDS dataset in
the layout of SOOP (OpenNeuro ds004889) plus a DICOM CT series per subject::

    participants.tsv                       participant_id, age, sex, nihss, site
    sub-0001/dwi/sub-0001_rec-{TRACE,ADC,B0}_dwi.nii.gz   b1000 trace, ADC and b0
    sub-0001/dwi/sub-0001_rec-{TRACE,ADC,B0}_dwi.json     (BIDS sidecars, units)
    sourcedata/ct/sub-0001/NCCT_HEAD/IM0001.dcm ...
    sourcedata/ct/sub-0001/NCCT_HEAD_FU1/...   follow-up NCCT before HT onset (some
        ischaemic subjects; CohortSpec.followup_rate), on a grid of its own
    derivatives/masks/sub-0001/sub-0001_desc-lesion_mask.nii.gz   lesion labels:
        1 acute infarct, 2 old infarct, 3 haemorrhage, 4 perihaematomal oedema
        (chapters count 1 and 3 as the acute lesion; 4 is new and counts as no lesion)
    derivatives/masks/sub-0001/sub-0001_desc-aspects_dseg.nii.gz  (regions 1..20)
    derivatives/masks/sub-0001/sub-0001_ses-fu1_desc-{lesion_mask,aspects_dseg}.nii.gz
        the same masks on a follow-up's grid
    derivatives/masks/sub-0001/sub-0001_desc-tissue_dseg.nii.gz   pure-tissue voxels:
        1 CSF, 2 cortical grey, 3 white matter, 4 deep grey nuclei, 5 internal capsule
    derivatives/masks/sub-0001/sub-0001_desc-brain_mask.nii.gz   the brain on the CT's grid
    derivatives/masks/sub-0001/sub-0001_space-dwi_desc-{lesion_mask,aspects_dseg,
        tissue_dseg}.nii.gz   the same three masks on the DWI's grid
    derivatives/masks/desc-{lesion,tissue}_dseg.tsv  the label values and their names
    derivatives/labels.tsv                 every label and its latent risk
    derivatives/scans.tsv                  participant_id, series, followup (0 baseline),
        hours_from_onset of every CT series (the DWI is acquired with the baseline CT)
    derivatives/geometry/sub-0001.json     template -> CT and template -> DWI poses
        (``subject_from_template``, ``dwi_from_template``) and the DWI's peak EPI shift
    derivatives/oracle.json                each label's oracle ceiling (AUC; null if undefined)

The baseline CT and the DWI of a subject are two acquisitions: each has its own grid,
head position and masks (the DWI's also carry its EPI distortion); a follow-up CT has a
grid and masks of its own too. A subject's
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
    draw_patient,
    followups,
    render,
    render_dwi,
)
from stroke_lib.data.synthetic.writers import (
    ras_affine,
    write_ct_series,
    write_dwi_sidecars,
    write_nifti,
)
from stroke_lib.paths import data_dir

__all__ = ["CohortSpec", "generate_cohort", "cohort_path", "oracle_ceilings", "mirror_voxels",
           "mirror_contrast", "POSE_KEYS"]

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
        followup_rate: chance that an ischaemic subject has a follow-up NCCT before HT
            onset, and that one with k follow-ups has another (at most two; ``subject.
            followups``). 0.25 gives about 1.3 CT scans per ischaemic patient, as CTNet's
            613 scans of 474 patients.
    """

    n_subjects: int = 120
    in_plane: int = 64
    sites: dict[str, float] = field(default_factory=lambda: {"A": 0.7, "B": 0.3})
    seed: int = 0
    ht_base_rate: float = HT_BASE_RATE
    followup_rate: float = 0.25

    def key(self) -> str:
        """Folder name: readable parameters plus a hash of all of them and of the
        generator's source, so a changed generator never reuses an old cohort."""
        return f"synthetic-n{self.n_subjects}-px{self.in_plane}-seed{self.seed}-{self._digest(asdict(self))}"

    def image_key(self) -> str:
        """The same hash without the HT base rate, which changes labels, never images:
        the DICOM UIDs derive from it, so cohorts that differ in that rate alone share
        their images byte for byte (``image_sibling``)."""
        return self._digest({k: v for k, v in asdict(self).items() if k != "ht_base_rate"})

    @staticmethod
    def _digest(parameters: dict) -> str:
        digest = hashlib.sha1(json.dumps(parameters, sort_keys=True).encode())
        for source in sorted(Path(__file__).parent.glob("*.py")):
            digest.update(source.read_bytes())
        return digest.hexdigest()[:8]


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


def _write_ct(root: Path, spec: CohortSpec, pid: str, series: str, sub, site: str, ses: str = "") -> None:
    """One CT series of ``sub`` with its lesion and region masks (``ses``: ``_ses-fuK``)."""
    affine = ras_affine(sub.spacing, sub.origin)
    masks = root / "derivatives" / "masks" / pid
    write_nifti(masks / f"{pid}{ses}_desc-lesion_mask.nii.gz", sub.lesion, affine)
    write_nifti(masks / f"{pid}{ses}_desc-aspects_dseg.nii.gz", sub.regions, affine)
    write_ct_series(root / "sourcedata" / "ct" / pid / series, sub.ct_hu, sub.spacing, sub.origin,
                    patient_id=pid, uid_key=f"{spec.image_key()}/{pid}/{series}", site=site,
                    age=float(sub.record["age"]), sex=str(sub.record["sex"]))


def _write_subject(args: tuple[int, str, CohortSpec, Path]) -> tuple[dict[str, object], list[dict[str, object]]]:
    """Write subject ``index``; return its labels row and one row per CT series."""
    index, site, spec, root = args
    atlas = load_atlas()
    patient = draw_patient(index, spec.seed, site, atlas, spec.ht_base_rate)
    sub = render(patient, spec.in_plane, atlas, spec.seed, index)
    dwi = render_dwi(patient, spec.in_plane, atlas, spec.seed, index)
    pid = f"sub-{index + 1:04d}"
    masks = root / "derivatives" / "masks" / pid
    affine = ras_affine(dwi.spacing, dwi.origin)
    dwi_dir = root / pid / "dwi"
    for rec, volume in (("TRACE", dwi.trace), ("ADC", dwi.adc), ("B0", dwi.b0)):
        write_nifti(dwi_dir / f"{pid}_rec-{rec}_dwi.nii.gz", volume, affine)
    write_dwi_sidecars(dwi_dir, pid, site)
    for desc, volume in (("lesion_mask", dwi.lesion), ("aspects_dseg", dwi.regions), ("tissue_dseg", dwi.tissue)):
        write_nifti(masks / f"{pid}_space-dwi_desc-{desc}.nii.gz", volume, affine)
    ct_affine = ras_affine(sub.spacing, sub.origin)
    write_nifti(masks / f"{pid}_desc-tissue_dseg.nii.gz", sub.tissue, ct_affine)
    write_nifti(masks / f"{pid}_desc-brain_mask.nii.gz", sub.brain, ct_affine)
    _write_ct(root, spec, pid, "NCCT_HEAD", sub, site)
    scans = [{"participant_id": pid, "series": "NCCT_HEAD", "followup": 0,
              "hours_from_onset": sub.record["onset_hours"]}]
    for k, (later, hours) in enumerate(followups(patient, index, spec.seed, spec.followup_rate), start=1):
        _write_ct(root, spec, pid, f"NCCT_HEAD_FU{k}", render(later, spec.in_plane, atlas, spec.seed, index, scan=k),
                  site, ses=f"_ses-fu{k}")
        scans.append({"participant_id": pid, "series": f"NCCT_HEAD_FU{k}", "followup": k,
                      "hours_from_onset": round(hours, 2)})
    geo = root / "derivatives" / "geometry" / f"{pid}.json"
    geo.parent.mkdir(parents=True, exist_ok=True)
    geo.write_text(json.dumps({**sub.geometry, "dwi_epi_shift_mm": round(dwi.epi_shift_mm, 3)}, indent=1))
    return {"participant_id": pid, **sub.record}, scans


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


def _label_records(spec: CohortSpec) -> list[dict[str, object]]:
    """Every subject's labels row, drawn again without rendering (``draw_patient``)."""
    atlas = load_atlas()
    return [{"participant_id": f"sub-{i + 1:04d}", **draw_patient(i, spec.seed, site, atlas, spec.ht_base_rate).record}
            for i, site in enumerate(_site_of_each(spec))]


def _write_tables(partial: Path, spec: CohortSpec, labels: pd.DataFrame) -> None:
    """participants.tsv, the labels, the oracle ceilings, the label names and the dataset
    description of a cohort whose images are in ``partial``."""
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


def image_sibling(spec: CohortSpec, cohorts: Path | None = None) -> Path | None:
    """A finished cohort under ``cohorts`` (default ``<data directory>/cohorts``) with the
    same images as ``spec``: every parameter equal but the HT base rate, written by this
    version of the generator. The base rate moves only the HT labels (the draw that
    decides HT and every image draw are made whatever the rate), so such a cohort's
    images are ``spec``'s, byte for byte."""
    cohorts = data_dir() / "cohorts" if cohorts is None else cohorts
    want = {k: v for k, v in asdict(spec).items() if k != "ht_base_rate"}
    for marker in sorted(cohorts.glob(f"*/{DONE_MARKER}")):
        try:
            other = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        if {k: v for k, v in other.items() if k != "ht_base_rate"} != want:
            continue
        try:
            sibling = CohortSpec(**{**other, "sites": dict(other["sites"])})
        except TypeError:
            continue
        if marker.parent.name == sibling.key():  # the same generator wrote it
            return marker.parent
    return None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def generate_cohort(
    spec: CohortSpec = CohortSpec(),
    root: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate the cohort of ``spec`` unless it exists; return its folder.

    When a cohort with the same images exists (``image_sibling``: another HT base rate
    only), its images are hard-linked (copied where links are not possible) and only
    the labels are drawn again, in seconds; the result is the same bytes as a cohort
    generated from scratch.

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
    load_atlas()  # built once in the parent; forked workers inherit it
    ht_intercept(spec.ht_base_rate)  # likewise the HT intercept of the base rate
    sibling = image_sibling(spec, root.parent)
    if sibling is not None:
        shutil.copytree(sibling, partial, copy_function=_link_or_copy,
                        ignore=shutil.ignore_patterns(DONE_MARKER, "labels.tsv", "participants.tsv", "oracle.json",
                                                      "dataset_description.json", "desc-*_dseg.tsv"))
        labels = pd.DataFrame.from_records(_label_records(spec))
    else:
        partial.mkdir(parents=True)
        jobs = [(i, s, spec, partial) for i, s in enumerate(_site_of_each(spec))]
        workers = workers or os.cpu_count() or 1
        bar = dict(total=len(jobs), desc="embedded cohort", unit="subject",
                   disable=None if progress else True)  # None: only on a terminal
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                written = list(tqdm(pool.map(_write_subject, jobs), **bar))
        else:
            written = [_write_subject(j) for j in tqdm(jobs, **bar)]
        labels = pd.DataFrame.from_records([record for record, _ in written])
        pd.DataFrame([row for _, scans in written for row in scans]).to_csv(
            partial / "derivatives" / "scans.tsv", sep="\t", index=False)
    _write_tables(partial, spec, labels)
    (partial / DONE_MARKER).write_text(json.dumps(asdict(spec), sort_keys=True))
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return root


#: The geometry record's pose of each modality's acquisition.
POSE_KEYS = {"CT": "subject_from_template", "DWI": "dwi_from_template"}


def mirror_voxels(affine: np.ndarray, shape: tuple[int, int, int], geometry: dict,
                  modality: str = "CT") -> np.ndarray:
    """Index (3, X, Y, Z) of each voxel's mirror image across the subject's midline.

    The midsagittal plane is the template's x = 0 carried by the pose of the
    ``modality``'s acquisition (the file ``derivatives/geometry/sub-*.json``); the mild
    elastic part of the warp (about 2 mm) and the DWI's EPI shift (a few mm near the
    skull base) are ignored. Indices are rounded and clipped to the grid.

    Args:
        affine: voxel -> RAS mm of the image (a loader's ``Volume.affine``).
        shape: the image shape (X, Y, Z).
        geometry: the subject's geometry record (``POSE_KEYS``' poses).
        modality: "CT" (the baseline CT) or "DWI" (trace, ADC and b0).
    """
    pose = np.asarray(geometry[POSE_KEYS[modality]], float)
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
    modality: str = "CT",
) -> float:
    """Mean of ``image`` inside ``mask`` minus its mean at the mirrored voxels.

    Pairs whose mirror voxel is itself in the mask, or whose mirror value lies outside
    ``valid`` (say 10-60 HU, to drop skull and CSF), are left out. NaN if no pair is left.

    Args:
        image, mask: (X, Y, Z) arrays on one grid with voxel -> RAS ``affine``.
        geometry: the subject's ``derivatives/geometry/sub-*.json`` record.
        modality: the acquisition ``image`` belongs to ("CT" or "DWI").
    """
    mirror = mirror_voxels(affine, image.shape, geometry, modality)
    inside = mask.astype(bool)
    mi = tuple(m[inside] for m in mirror)
    other = image[mi]
    keep = ~inside[mi] & (other >= valid[0]) & (other <= valid[1])
    if not keep.any():
        return float("nan")
    return float(image[inside][keep].mean() - other[keep].mean())
