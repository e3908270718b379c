"""RSNA Intracranial Hemorrhage Detection 2019 (Kaggle): DICOM slices and their labels.

Layout: ``stage_2_train.csv`` with rows ``ID_<hex>_<subtype>,Label`` for six subtypes
(``any`` and the five haemorrhage types; some rows appear twice) and a flat folder
``stage_2_train/ID_<hex>.dcm``, one file per slice. Slices are grouped into scans by
StudyInstanceUID and SeriesInstanceUID and ordered by position along the slice normal.

About 1 in 40 series of this release store 12-bit unsigned values with a rescale that
puts air near +3000 HU; ``rsna_pixel_fix`` applies the community's fix (BitsStored 12,
PixelRepresentation 0, RescaleIntercept > -100: add 1000, wrap at 4096, intercept -1000).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset
from tqdm import tqdm

from stroke_lib.data.cohort import Cohort
from stroke_lib.data.dicom import header_numbers, read_dicom
from stroke_lib.data.pseudonyms import Pseudonyms
from stroke_lib.data.rejects import Collector
from stroke_lib.data.slices import read_dicom_slice
from stroke_lib.errors import DataError

SUBTYPES = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"]
LABELS_FILE = "stage_2_train.csv"
IMAGES_DIR = "stage_2_train"


def rsna_pixel_fix(ds: Dataset, stored: np.ndarray, intercept: float) -> tuple[np.ndarray, float]:
    """The known fix of RSNA 2019's mis-stored slices: (stored values, intercept).

    Applies when BitsStored is 12, PixelRepresentation 0 and RescaleIntercept > -100;
    other slices are returned unchanged.
    """
    if int(ds.get("BitsStored", 16)) != 12 or int(ds.get("PixelRepresentation", 1)) != 0 \
            or intercept <= -100:
        return stored, intercept
    fixed = stored.astype(np.int32) + 1000
    fixed[fixed >= 4096] -= 4096
    return fixed, -1000.0


def read_rsna_slice(path: str | Path):
    """One RSNA slice in HU with ``rsna_pixel_fix`` applied (see ``read_dicom_slice``)."""
    return read_dicom_slice(path, fix=rsna_pixel_fix)


def read_labels(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """``stage_2_train.csv`` as one row per slice: ``slice_id`` and one 0/1 column per
    subtype. Exact duplicate rows are dropped; a slice with conflicting labels, a missing
    subtype, or ``any`` disagreeing with its subtypes is left out and described.

    Returns:
        (labels, problems): problems are sentences naming the slice.

    Raises:
        DataError naming the file: missing, unreadable, or not in the ``ID,Label`` form.
    """
    if not path.exists():
        raise DataError(path, f"{LABELS_FILE} not found")
    try:
        raw = pd.read_csv(path, dtype={"ID": str})
    except Exception as exc:  # pandas raises several types on a malformed table
        raise DataError(path, f"cannot be read as CSV ({exc})") from exc
    if list(raw.columns[:2]) != ["ID", "Label"]:
        raise DataError(path, f"expected columns ID, Label; found {list(raw.columns)}")
    parts = raw.ID.str.rsplit("_", n=1, expand=True)
    if parts.shape[1] != 2 or not parts[1].isin(SUBTYPES).all():
        bad = raw.ID[~parts[1].isin(SUBTYPES)].iloc[0] if parts.shape[1] == 2 else raw.ID.iloc[0]
        raise DataError(path, f"ID {bad!r} is not ID_<slice>_<subtype> with a subtype of {SUBTYPES}")
    long = pd.DataFrame({"slice_id": parts[0], "subtype": parts[1],
                         "label": pd.to_numeric(raw.Label, errors="coerce")}).drop_duplicates()
    problems = []
    bad_value = long.label.isna() | ~long.label.isin([0, 1])
    conflict = long.duplicated(["slice_id", "subtype"], keep=False)
    drop = set(long.slice_id[bad_value]) | set(long.slice_id[conflict])
    for sid in sorted(set(long.slice_id[bad_value])):
        problems.append(f"{sid}: a label is not 0 or 1")
    for sid in sorted(set(long.slice_id[conflict])):
        problems.append(f"{sid}: listed twice with different labels")
    wide = long[~long.slice_id.isin(drop)].pivot(index="slice_id", columns="subtype", values="label")
    incomplete = wide.isna().any(axis=1)
    for sid in wide.index[incomplete]:
        problems.append(f"{sid}: labels for {sorted(wide.columns[wide.loc[sid].isna()])} missing")
    wide = wide[~incomplete].reindex(columns=SUBTYPES).astype(int)
    disagree = wide["any"] != wide[SUBTYPES[1:]].max(axis=1)
    for sid in wide.index[disagree]:
        problems.append(f"{sid}: 'any' is {wide.loc[sid, 'any']} but the subtypes say otherwise")
    return wide[~disagree].reset_index(), problems


def load_rsna_ich(root: str | Path, validate: bool = False) -> Cohort:
    """Load RSNA ICH 2019 as one row per slice, with slice- and scan-level labels.

    Every file's header is read (to group and order the slices); with ``validate`` its
    pixels are decoded too (slow on the full release: about 875,000 files).

    Returns:
        Cohort with columns ``patient_id`` and ``scan_id`` (pseudonyms of PatientID and of
        the study/series), ``site`` ("RSNA"), ``modality`` ("CT slice"), ``image`` (the
        file), ``slice_id`` (the release's ``ID_<hex>``), ``slice_index`` (0 = most
        inferior along the slice normal), the six subtype labels (0/1) of the slice and
        ``scan_<subtype>`` (1 if any slice of the scan has it).

    Raises:
        DataError: the labels file is missing or malformed, or no slice is found.
    """
    root = Path(root)
    labels_path = root / LABELS_FILE
    labels, problems = read_labels(labels_path)
    col = Collector(validate)
    for problem in problems:
        col.add(problem.split(":")[0], labels_path, problem)
    files = sorted((root / IMAGES_DIR).glob("*.dcm"))
    if not files:
        raise DataError(root / IMAGES_DIR, "no ID_*.dcm slice found")
    by_id = labels.set_index("slice_id")
    reported = {p.split(":")[0] for p in problems}  # slices whose labels were rejected
    aliases = Pseudonyms("rsna_ich_2019")
    rows = []
    for path in tqdm(files, desc="reading RSNA slices", unit="slice", leave=False):
        sid = path.stem
        if sid not in by_id.index:
            if sid not in reported:
                col.add(sid, path, f"no labels in {LABELS_FILE}")
            continue
        try:
            ds = read_dicom(path, header_only=not validate)
            patient = str(ds.get("PatientID", "")) or sid
            scan = f"{ds.get('StudyInstanceUID', '')}/{ds.get('SeriesInstanceUID', '')}"
            iop = header_numbers(ds, path, "ImageOrientationPatient", 6)
            ipp = header_numbers(ds, path, "ImagePositionPatient", 3)
        except DataError as err:
            col.add(sid, err.path, err.problem)
            continue
        if validate and col.read(sid, path, read_rsna_slice) is None:
            continue
        rows.append({"patient_id": aliases.of(patient),
                     "scan_id": aliases.of(scan).replace("P-", "S-"),
                     "site": "RSNA", "modality": "CT slice", "image": str(path), "slice_id": sid,
                     "position": float(np.dot(ipp, np.cross(iop[:3], iop[3:]))),
                     **by_id.loc[sid].to_dict()})
    missing = sorted(set(by_id.index) - {f.stem for f in files})
    if missing:
        col.add("", labels_path, f"{len(missing)} labelled slice(s) have no file in "
                f"{IMAGES_DIR}/ (e.g. {missing[0]}.dcm): partial download?")
    if aliases.mapping:
        aliases.save()
    return Cohort(_scan_labels(pd.DataFrame(rows)), col.frame(), "rsna_ich_2019", root)


def _scan_labels(table: pd.DataFrame) -> pd.DataFrame:
    """Order slices within each scan, number them, and add ``scan_<subtype>`` columns."""
    columns = ["patient_id", "scan_id", "site", "modality", "image", "slice_id", "slice_index",
               *SUBTYPES, *(f"scan_{s}" for s in SUBTYPES)]
    if table.empty:
        return pd.DataFrame(columns=columns)
    table = table.sort_values(["scan_id", "position", "slice_id"], ignore_index=True)
    table["slice_index"] = table.groupby("scan_id").cumcount()
    for s in SUBTYPES:
        table[f"scan_{s}"] = table.groupby("scan_id")[s].transform("max")
    return table[columns]
