"""The ``Cohort`` table and the loaders that build it from datasets on disk.

A cohort has one row per scan with ``patient_id``, ``scan_id``, ``site``, ``modality``,
file paths (``image``, and ``adc``/``mask``/``regions`` where they exist) and the
dataset's labels. Scans that cannot be used are skipped and listed in ``rejects`` with
the file and the reason; scans the readers repaired (reoriented, NaN replaced) stay in
the table and are listed there too. Only pseudonymous IDs enter the table: no DICOM
attribute is copied into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
from tqdm import tqdm

from stroke_lib.data.dicom import read_ct_series
from stroke_lib.data.nifti import read_nifti
from stroke_lib.data.volume import Volume
from stroke_lib.errors import DataError

REJECT_COLUMNS = ["patient_id", "file", "problem", "action"]


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


class _Collector:
    """Checks scans, keeping rejects instead of raising.

    Every path must exist; with ``validate`` each is also read once through the reader,
    so unreadable files are rejected and repairs are listed.
    """

    def __init__(self, validate: bool) -> None:
        self.validate = validate
        self.rows: list[dict[str, object]] = []

    def check(self, patient_id: str, paths: list[Path], reader: Callable[[Path], Volume]) -> bool:
        for path in paths:
            if not path.exists():
                self.rows.append(_reject(patient_id, path, "file not found", "skipped"))
                return False
            if not self.validate:
                continue
            try:
                vol = reader(path)
            except DataError as err:
                self.rows.append(_reject(patient_id, err.path, err.problem, "skipped"))
                return False
            for note in vol.notes:
                self.rows.append(_reject(patient_id, path, note, "repaired"))
        return True

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=REJECT_COLUMNS)


def _reject(patient_id: str, path: Path, problem: str, action: str) -> dict[str, object]:
    return {"patient_id": patient_id, "file": str(path), "problem": problem, "action": action}


def read_participants(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read a BIDS participants.tsv, checking that ``required`` columns exist.

    Raises:
        DataError: the file is missing, unreadable or lacks a required column.
    """
    if not path.exists():
        raise DataError(path, "participants.tsv not found")
    try:
        df = pd.read_csv(path, sep="\t", dtype={"participant_id": str}, na_values=["n/a"])
    except Exception as exc:
        raise DataError(path, f"cannot be read as a tab-separated table ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; found {list(df.columns)}")
    return df


def load_soop(root: str | Path, site: str = "SOOP", validate: bool = True) -> Cohort:
    """Load DWI trace and ADC with NIHSS from a dataset in SOOP's BIDS layout.

    Layout (OpenNeuro ds004889): ``participants.tsv`` with ``participant_id`` and
    ``nihss``; ``sub-X/dwi/sub-X_rec-TRACE_dwi.nii.gz`` and ``..._rec-ADC_dwi.nii.gz``.
    A ``site`` column in participants.tsv overrides ``site``. Participants without an
    NIHSS value are rejected (the label is missing).

    Args:
        validate: read every image once so bad files are rejected now, not mid-training.
    """
    root = Path(root)
    part = read_participants(root / "participants.tsv", ("participant_id", "nihss"))
    col = _Collector(validate)
    rows = []
    for rec in tqdm(part.to_dict("records"), desc=f"reading {root.name}", unit="subject", leave=False):
        pid = str(rec["participant_id"])
        dwi = root / pid / "dwi" / f"{pid}_rec-TRACE_dwi.nii.gz"
        adc = root / pid / "dwi" / f"{pid}_rec-ADC_dwi.nii.gz"
        if pd.isna(rec["nihss"]):
            col.rows.append(_reject(pid, root / "participants.tsv", "nihss is empty", "skipped"))
            continue
        if not col.check(pid, [dwi, adc], read_nifti):
            continue
        rows.append(
            {
                "patient_id": pid,
                "scan_id": f"{pid}_dwi",
                "site": str(rec.get("site", site)),
                "modality": "DWI",
                "image": str(dwi),
                "adc": str(adc),
                **{k: v for k, v in rec.items() if k not in ("participant_id", "site")},
            }
        )
    return Cohort(pd.DataFrame(rows), col.frame(), "soop", root)


def load_isles22(root: str | Path, validate: bool = True) -> Cohort:
    """Load DWI, ADC and lesion masks from ISLES 2022 (BIDS, ``rawdata``/``derivatives``).

    Layout: ``rawdata/sub-strokecaseN/ses-0001/dwi/sub-strokecaseN_ses-0001_dwi.nii.gz``
    and ``..._adc.nii.gz``; masks in ``derivatives/sub-strokecaseN/ses-0001/
    sub-strokecaseN_ses-0001_msk.nii.gz``. ISLES 2022 has no clinical labels.
    """
    root = Path(root)
    subjects = sorted(p.name for p in (root / "rawdata").glob("sub-*") if p.is_dir())
    if not subjects:
        raise DataError(root / "rawdata", "no sub-* folders: not the ISLES 2022 layout")
    col = _Collector(validate)
    rows = []
    for pid in tqdm(subjects, desc="reading ISLES 2022", unit="subject", leave=False):
        stem = f"{pid}_ses-0001"
        dwi = root / "rawdata" / pid / "ses-0001" / "dwi" / f"{stem}_dwi.nii.gz"
        adc = dwi.with_name(f"{stem}_adc.nii.gz")
        mask = root / "derivatives" / pid / "ses-0001" / f"{stem}_msk.nii.gz"
        if not col.check(pid, [dwi, adc, mask], read_nifti):
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


def load_ct_series_folders(
    root: str | Path, series_glob: str = "*/*", site: str = "", validate: bool = True
) -> Cohort:
    """Load one CT series per folder matching ``root/series_glob``.

    The first path component under ``root`` is the patient ID (as in CQ500 and the
    embedded cohort's ``sourcedata/ct/sub-X/NCCT_HEAD``).
    """
    root = Path(root)
    col = _Collector(validate)
    rows = []
    folders = sorted(p for p in root.glob(series_glob) if p.is_dir())
    for folder in tqdm(folders, desc="reading CT series", unit="series", leave=False):
        pid = folder.relative_to(root).parts[0]
        if not col.check(pid, [folder], read_ct_series):
            continue
        rows.append(
            {
                "patient_id": pid,
                "scan_id": f"{pid}_ct_{folder.name}",
                "site": site,
                "modality": "CT",
                "image": str(folder),
            }
        )
    return Cohort(pd.DataFrame(rows, columns=["patient_id", "scan_id", "site", "modality", "image"]),
                  col.frame(), "ct", root)


def load_embedded(root: str | Path, validate: bool = True) -> Cohort:
    """Load the embedded cohort: DWI/ADC through ``load_soop``, CT through
    ``load_ct_series_folders``, masks and every label from ``derivatives/``.

    Each subject gives two rows (modality ``DWI`` and ``CT``) on one scanner grid, so
    ``mask`` (lesion labels) and ``regions`` (ASPECTS-like regions) fit both.
    """
    root = Path(root)
    dwi = load_soop(root, validate=validate)
    ct = load_ct_series_folders(root / "sourcedata" / "ct", "*/NCCT_HEAD", validate=validate)
    labels = pd.read_csv(root / "derivatives" / "labels.tsv", sep="\t", dtype={"participant_id": str})
    labels = labels.rename(columns={"participant_id": "patient_id"})
    labels["territory"] = labels["territory"].fillna("")
    keep = ["patient_id", "scan_id", "modality", "image", "adc"]
    table = pd.concat([dwi.table[keep], ct.table[["patient_id", "scan_id", "modality", "image"]]])
    table = table.merge(labels, on="patient_id", how="left")
    masks = root / "derivatives" / "masks"
    table["mask"] = [str(masks / p / f"{p}_desc-lesion_mask.nii.gz") for p in table.patient_id]
    table["regions"] = [str(masks / p / f"{p}_desc-aspects_dseg.nii.gz") for p in table.patient_id]
    table = table.sort_values(["patient_id", "modality"], ignore_index=True)
    rejects = pd.concat([dwi.rejects, ct.rejects], ignore_index=True)
    return Cohort(table, rejects, "synthetic", root)
