"""The ``Cohort`` table and the loaders that build it from datasets on disk.

A cohort has one row per scan with ``patient_id``, ``scan_id``, ``site``, ``modality``,
file paths (``image``, and ``adc``/``mask``/``regions`` where they exist) and the
dataset's labels. Scans that cannot be used are skipped and listed in ``rejects`` with
the file and the reason; scans the readers repaired (reoriented, NaN replaced) stay in
the table and are listed there too. Only pseudonymous IDs enter the table: no DICOM
attribute is copied into it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from stroke_lib.data.dicom import read_ct_series
from stroke_lib.data.manifests import load_manifest
from stroke_lib.data.nifti import read_nifti
from stroke_lib.data.participants import id_hint, read_participants
from stroke_lib.data.pseudonyms import Pseudonyms
from stroke_lib.data.rejects import REJECT_COLUMNS, Collector
from stroke_lib.data.volume import Volume
from stroke_lib.errors import DataError

__all__ = ["Cohort", "REJECT_COLUMNS", "load_soop", "load_isles22", "load_ct_series_folders",
           "load_embedded"]

@dataclass
class Cohort:
    """A table of scans plus the scans that were rejected or repaired.

    Attributes:
        table: one row per usable scan (see module docstring for the columns).
        rejects: columns ``patient_id, file, problem, action`` (``skipped``/``repaired``).
        name: dataset name, e.g. ``"synthetic"`` or ``"soop"``.
        root: the dataset folder.
    """

    table: pd.DataFrame
    rejects: pd.DataFrame
    name: str
    root: Path

    def patients(self) -> pd.Index:
        """The distinct patient IDs."""
        return pd.Index(self.table.patient_id.unique())


#: Maximum difference (mm) between the DWI and ADC affines of one scan.
GRID_TOLERANCE_MM = 1e-3


def _bids_scans(root: Path, pid: str, suffix: str) -> list[tuple[str, Path]]:
    """(session or "", path) for each ``{pid}[_{ses}]_{suffix}`` under ``pid/[ses-*/]dwi``."""
    sessions = sorted(p.name for p in (root / pid).glob("ses-*") if p.is_dir())
    if not sessions:
        return [("", root / pid / "dwi" / f"{pid}_{suffix}")]
    return [(ses, root / pid / ses / "dwi" / f"{pid}_{ses}_{suffix}") for ses in sessions]


def _same_grid(col: Collector, pid: str, dwi: Volume, adc: Volume) -> bool:
    """Reject the scan (naming the ADC) when ADC and DWI are not on one voxel grid."""
    if dwi.data.shape == adc.data.shape and np.allclose(dwi.affine, adc.affine,
                                                         atol=GRID_TOLERANCE_MM):
        return True
    col.add(pid, adc.source, f"ADC grid (shape {adc.data.shape}, spacing "
            f"{np.round(adc.spacing, 2).tolist()} mm) differs from its DWI {dwi.source.name} "
            f"(shape {dwi.data.shape}, spacing {np.round(dwi.spacing, 2).tolist()} mm): "
            "resample one onto the other")
    return False


def _dwi_adc_usable(col: Collector, pid: str, dwi: Path, adc: Path) -> bool:
    """Both files exist and, with ``col.validate``, read and share one grid."""
    if not col.validate:
        return col.check(pid, [dwi, adc], read_nifti)
    dwi_vol = col.read(pid, dwi, read_nifti)
    adc_vol = col.read(pid, adc, read_nifti) if dwi_vol is not None else None
    return adc_vol is not None and _same_grid(col, pid, dwi_vol, adc_vol)


def load_soop(root: str | Path, site: str = "SOOP", validate: bool = True) -> Cohort:
    """Load DWI trace and ADC with the participants' values from SOOP's BIDS layout.

    Layout (OpenNeuro ds004889): ``participants.tsv`` (``participant_id, sex, age, race,
    acuteischaemicstroke, priorstroke, bmi, nihss, gs_rankin_6isdeath, etiology``; the
    embedded cohort's has ``participant_id, age, sex, nihss, site``) and
    ``sub-X/dwi/sub-X_rec-TRACE_dwi.nii.gz`` with ``..._rec-ADC_dwi.nii.gz``; with sessions
    ``sub-X/ses-Y/dwi/sub-X_ses-Y_rec-TRACE_dwi.nii.gz`` (one row per session).

    The participants table is validated against ``data_manifests/soop.yaml``
    (``stroke_lib.data.participants.read_participants``): ``n/a`` is missing, ``"89+"``
    is read as 89 and noted, a missing or non-numeric NIHSS rejects the participant.
    Image folders without a row and rows without images are rejected, with a hint when
    the IDs differ only in case, whitespace or ``sub-``. A ``site`` column overrides
    ``site``. With ``validate`` every image is read once and an ADC on another grid than
    its DWI is rejected.

    Returns:
        Cohort with columns ``patient_id, scan_id, site, modality, image, adc`` (``session``
        when the dataset has sessions) and the participants' columns.

    Raises:
        DataError naming participants.tsv: missing, unreadable, no ``participant_id`` or
        ``nihss`` column, or duplicated participant IDs.
    """
    root = Path(root)
    tsv = root / "participants.tsv"
    spec = load_manifest("soop")["participants"]
    part = read_participants(tsv, spec["label"], spec["columns"])
    col = Collector(validate)
    col.rows.extend(part.rejects)
    ids = part.table.participant_id.tolist()
    folders = sorted(p.name for p in root.glob("sub-*") if p.is_dir())
    for folder in sorted(set(folders) - set(ids)):
        col.add(folder, root / folder, "image folder has no row in participants.tsv"
                + id_hint(folder, ids, "participant_id"))
    rows = []
    with_sessions = False
    records = part.table.to_dict("records")
    for rec in tqdm(records, desc=f"reading {root.name}", unit="subject", leave=False):
        pid = rec["participant_id"]
        if pid in part.skipped:
            continue
        if pd.isna(rec["nihss"]):
            col.add(pid, tsv, f"participant {pid}: nihss is empty")
            continue
        if not (root / pid).is_dir():
            col.add(pid, root / pid, "participants.tsv row has no image folder"
                    + id_hint(pid, folders, "folder"))
            continue
        for ses, dwi in _bids_scans(root, pid, "rec-TRACE_dwi.nii.gz"):
            adc = dwi.with_name(dwi.name.replace("rec-TRACE", "rec-ADC"))
            if not _dwi_adc_usable(col, pid, dwi, adc):
                continue
            with_sessions |= bool(ses)
            site_value = rec.get("site")
            rows.append(
                {
                    "patient_id": pid,
                    "scan_id": f"{pid}_{ses}_dwi" if ses else f"{pid}_dwi",
                    "site": site if pd.isna(site_value) or site_value is None else str(site_value),
                    "modality": "DWI",
                    "image": str(dwi),
                    "adc": str(adc),
                    "session": ses,
                    **{k: v for k, v in rec.items() if k not in ("participant_id", "site")},
                }
            )
    columns = ["patient_id", "scan_id", "site", "modality", "image", "adc", "session"]
    columns += [c for c in part.table.columns if c not in ("participant_id", "site")]
    table = pd.DataFrame(rows, columns=columns)
    if not with_sessions:
        table = table.drop(columns="session")
    return Cohort(table, col.frame(), "soop", root)


def load_isles22(root: str | Path, validate: bool = True) -> Cohort:
    """Load DWI, ADC and lesion masks from ISLES 2022 (BIDS, ``rawdata``/``derivatives``).

    Layout: ``rawdata/sub-strokecaseN/ses-0001/dwi/sub-strokecaseN_ses-0001_dwi.nii.gz``
    and ``..._adc.nii.gz``; masks in ``derivatives/sub-strokecaseN/ses-0001/
    sub-strokecaseN_ses-0001_msk.nii.gz``. ISLES 2022 has no clinical labels. With
    ``validate`` an ADC on another grid than its DWI is rejected, as in ``load_soop``.
    """
    root = Path(root)
    subjects = sorted(p.name for p in (root / "rawdata").glob("sub-*") if p.is_dir())
    if not subjects:
        raise DataError(root / "rawdata", "no sub-* folders: not the ISLES 2022 layout")
    col = Collector(validate)
    rows = []
    for pid in tqdm(subjects, desc="reading ISLES 2022", unit="subject", leave=False):
        stem = f"{pid}_ses-0001"
        dwi = root / "rawdata" / pid / "ses-0001" / "dwi" / f"{stem}_dwi.nii.gz"
        adc = dwi.with_name(f"{stem}_adc.nii.gz")
        mask = root / "derivatives" / pid / "ses-0001" / f"{stem}_msk.nii.gz"
        if not _dwi_adc_usable(col, pid, dwi, adc) or not col.check(pid, [mask], read_nifti):
            continue
        rows.append(
            {
                "patient_id": pid,
                "scan_id": f"{pid}_dwi",
                "site": "ISLES22",
                "modality": "DWI",
                "image": str(dwi),
                "adc": str(adc),
                "mask": str(mask),
            }
        )
    return Cohort(pd.DataFrame(rows), col.frame(), "isles22", root)


#: A BIDS subject label: pseudonymous by the convention, kept as it is.
_BIDS_SUBJECT = re.compile(r"^sub-[A-Za-z0-9]+$")


def load_ct_series_folders(
    root: str | Path, series_glob: str = "*/*", site: str = "", validate: bool = True,
    pseudonymize: bool = True, name: str = "ct",
) -> Cohort:
    """Load one CT series per folder matching ``root/series_glob``.

    The first path component under ``root`` names the patient (as in CQ500 and the
    embedded cohort's ``sourcedata/ct/sub-X/NCCT_HEAD``). With ``pseudonymize`` a name
    that is not a BIDS label (``sub-<alphanumerics>``) is replaced by a salted-hash
    pseudonym (``stroke_lib.data.pseudonyms``), and so is the scan ID; the map back is
    written under the data directory as ``pseudonyms/<name>.tsv``. The ``image`` paths
    (and the rejects' ``file``) still name the folders: they are how the files are found,
    so a page shows IDs, never paths, of real data.

    Returns:
        Cohort with columns ``patient_id, scan_id, site, modality, image`` (the series
        folder).
    """
    root = Path(root)
    col = Collector(validate)
    aliases = Pseudonyms(name) if pseudonymize else None
    rows = []
    folders = sorted(p for p in root.glob(series_glob) if p.is_dir())
    for folder in tqdm(folders, desc="reading CT series", unit="series", leave=False):
        rel = folder.relative_to(root)
        pid, scan_id = rel.parts[0], f"{rel.parts[0]}_ct_{folder.name}"
        if aliases is not None and not _BIDS_SUBJECT.match(pid):
            pid, scan_id = aliases.of(pid), aliases.of(rel.as_posix()).replace("P-", "S-")
        if not col.check(pid, [folder], read_ct_series):
            continue
        rows.append({"patient_id": pid, "scan_id": scan_id, "site": site, "modality": "CT",
                     "image": str(folder)})
    if aliases is not None and aliases.mapping:
        aliases.save()
    return Cohort(pd.DataFrame(rows, columns=["patient_id", "scan_id", "site", "modality", "image"]),
                  col.frame(), name, root)


def load_embedded(root: str | Path, validate: bool = True, modalities: tuple[str, ...] = ("DWI", "CT")) -> Cohort:
    """Load the embedded cohort: DWI/ADC through ``load_soop``, CT through
    ``load_ct_series_folders``, masks, scan times and every label from ``derivatives/``.

    Each subject gives a ``DWI`` row and a baseline ``CT`` row, two acquisitions on grids
    of their own, and a ``CT`` row per follow-up NCCT (``sourcedata/ct/sub-X/NCCT_HEAD_FUk``,
    on a grid of its own too); ``mask`` (lesion labels) and ``regions`` (ASPECTS-like
    regions) name the masks on each row's grid (``*_space-dwi_desc-*`` for the DWI). ``followup`` is 0 for the baseline scans and k for the k-th
    follow-up; ``hours_from_onset`` is the time of the scan (the DWI's is the baseline
    CT's). ``modalities`` limits what is read (and validated) to ``"DWI"`` or ``"CT"``.
    """
    root = Path(root)
    unknown = set(modalities) - {"DWI", "CT"}
    if unknown or not modalities:
        raise ValueError(f"modalities must be drawn from DWI and CT, got {list(modalities)}")
    dwi = load_soop(root, validate=validate and "DWI" in modalities)
    ct = (load_ct_series_folders(root / "sourcedata" / "ct", "*/NCCT_HEAD*", validate=validate,
                                 pseudonymize=False) if "CT" in modalities else
          Cohort(pd.DataFrame(columns=["patient_id", "scan_id", "site", "modality", "image"]),
                 pd.DataFrame(columns=REJECT_COLUMNS), "ct", root))
    labels = pd.read_csv(root / "derivatives" / "labels.tsv", sep="\t", dtype={"participant_id": str})
    labels = labels.rename(columns={"participant_id": "patient_id"})
    labels["territory"] = labels["territory"].fillna("")
    scans = pd.read_csv(root / "derivatives" / "scans.tsv", sep="\t", dtype={"participant_id": str})
    scans = scans.rename(columns={"participant_id": "patient_id"})
    ct_rows = ct.table[["patient_id", "scan_id", "modality", "image"]].assign(
        series=[Path(p).name for p in ct.table.image])
    ct_rows = ct_rows.merge(scans, on=["patient_id", "series"], how="left")
    dwi_rows = dwi.table[["patient_id", "scan_id", "modality", "image", "adc"]].merge(
        scans[scans.followup == 0].drop(columns="series"), on="patient_id", how="left")
    parts = ([dwi_rows] if "DWI" in modalities else []) + ([ct_rows.drop(columns="series")] if "CT" in modalities else [])
    table = pd.concat(parts).merge(labels, on="patient_id", how="left")
    table["followup"] = table["followup"].fillna(0).astype(int)
    masks = root / "derivatives" / "masks"
    grid = ["_space-dwi" if m == "DWI" else "" if k == 0 else f"_ses-fu{k}"
            for m, k in zip(table.modality, table.followup)]
    table["mask"] = [str(masks / p / f"{p}{g}_desc-lesion_mask.nii.gz") for p, g in zip(table.patient_id, grid)]
    table["regions"] = [str(masks / p / f"{p}{g}_desc-aspects_dseg.nii.gz") for p, g in zip(table.patient_id, grid)]
    table = table.sort_values(["patient_id", "modality", "followup"], ignore_index=True)
    rejects = pd.concat([dwi.rejects, ct.rejects], ignore_index=True)
    return Cohort(table, rejects, "synthetic", root)
