"""ISLES 2024 (final infarct prediction): admission NCCT, final lesion mask and NIHSS.

Layout (Zenodo release, optionally under ``train/``; ``rawdata`` or ``raw_data``)::

    raw_data/sub-stroke0001/ses-01/sub-stroke0001_ses-01_ncct.nii.gz   (also CTA, CTP)
    derivatives/sub-stroke0001/ses-02/sub-stroke0001_ses-02_lesion-msk.nii.gz
    phenotype/sub-stroke0001/ses-01/sub-stroke0001_ses-01_demographic_baseline.xlsx

The NIHSS is the phenotype column whose name contains ``NIHSS`` (the one that also says
``admission`` when there are several). Files are found by these patterns at any depth
under the subject's session folder, so ``ct/``-style subfolders are read too.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm import tqdm

from stroke_lib.data.cohort import Cohort
from stroke_lib.data.nifti import read_nifti
from stroke_lib.data.rejects import Collector
from stroke_lib.errors import DataError

RAW_DIRS = ("raw_data", "rawdata")
NIHSS_RANGE = (0, 42)


def _first(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.rglob(pattern)) if folder.is_dir() else []
    return found[0] if found else None


def read_phenotype_nihss(path: Path) -> float:
    """Admission NIHSS from one subject's phenotype table (xlsx, csv or tsv).

    Raises:
        DataError naming the file: unreadable, no NIHSS column, or a value that is not
        a number in 0..42.
    """
    try:
        if path.suffix == ".xlsx":
            table = pd.read_excel(path)
        else:
            table = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    except Exception as exc:  # pandas/openpyxl raise many types on a malformed file
        raise DataError(path, f"phenotype table cannot be read ({type(exc).__name__}: {exc})") from exc
    columns = [c for c in table.columns if "nihss" in str(c).lower()]
    columns.sort(key=lambda c: "admission" not in str(c).lower())
    if not columns or table.empty:
        raise DataError(path, f"no NIHSS column (columns: {[str(c) for c in table.columns][:10]})")
    value = table[columns[0]].iloc[0]
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    if pd.isna(number) or not NIHSS_RANGE[0] <= number <= NIHSS_RANGE[1]:
        raise DataError(path, f"{columns[0]} {value!r} is not an NIHSS score (0..42)")
    return float(number)


def load_isles24(root: str | Path, validate: bool = True) -> Cohort:
    """Load ISLES 2024: one row per subject with its NCCT, final lesion mask and NIHSS.

    Subject labels (``sub-strokeNNNN``) are the release's own pseudonyms and are kept.
    With ``validate`` the NCCT and the mask are read once and a mask on another grid than
    its NCCT is rejected.

    Returns:
        Cohort with columns ``patient_id, scan_id, site`` ("ISLES24"), ``modality``
        ("CT"), ``image`` (NCCT), ``mask`` (final infarct) and ``nihss``.

    Raises:
        DataError naming ``root`` when it holds no ``raw_data/sub-*`` folder.
    """
    root = Path(root)
    if not any((root / d).is_dir() for d in RAW_DIRS) and (root / "train").is_dir():
        root = root / "train"
    raw = next((root / d for d in RAW_DIRS if (root / d).is_dir()), root / RAW_DIRS[0])
    subjects = sorted(p.name for p in raw.glob("sub-*") if p.is_dir())
    if not subjects:
        raise DataError(raw, "no sub-* folder: not the ISLES 2024 layout")
    col = Collector(validate)
    rows = []
    for pid in tqdm(subjects, desc="reading ISLES 2024", unit="subject", leave=False):
        ncct = _first(raw / pid / "ses-01", "*ncct*.nii.gz")
        mask = _first(root / "derivatives" / pid / "ses-02", "*msk*.nii.gz")
        pheno = _first(root / "phenotype" / pid / "ses-01", "*.xlsx") or _first(
            root / "phenotype" / pid / "ses-01", "*.[ct]sv")
        missing = [(what, where) for what, found, where in (
            ("NCCT", ncct, raw / pid / "ses-01"),
            ("lesion mask", mask, root / "derivatives" / pid / "ses-02"),
            ("phenotype table", pheno, root / "phenotype" / pid / "ses-01")) if found is None]
        if missing:
            col.add(pid, missing[0][1], f"no {missing[0][0]} file in this folder")
            continue
        try:
            nihss = read_phenotype_nihss(pheno)
        except DataError as err:
            col.add(pid, err.path, err.problem)
            continue
        if validate:
            ct = col.read(pid, ncct, read_nifti)
            lesion = col.read(pid, mask, read_nifti) if ct is not None else None
            if lesion is None:
                continue
            if lesion.data.shape != ct.data.shape:
                col.add(pid, mask, f"lesion mask grid {lesion.data.shape} differs from its NCCT "
                        f"{ct.data.shape} ({ncct.name})")
                continue
        rows.append({"patient_id": pid, "scan_id": f"{pid}_ncct", "site": "ISLES24",
                     "modality": "CT", "image": str(ncct), "mask": str(mask), "nihss": nihss})
    columns = ["patient_id", "scan_id", "site", "modality", "image", "mask", "nihss"]
    return Cohort(pd.DataFrame(rows, columns=columns), col.frame(), "isles_2024", root)
