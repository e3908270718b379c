"""CQ500 head CT (Qure.ai): DICOM series and three radiologists' reads.

Layout: ``reads.csv`` (``name`` = ``CQ500-CT-<N>``, ``Category``, then per reader
``R1:ICH, R1:IPH, R1:IVH, R1:SDH, R1:EDH, R1:SAH, ..., R1:Fracture, ..., R1:MidlineShift``
and the same for R2 and R3), and one folder per scan ``CQ500CT<N> CQ500CT<N>/Unknown
Study/<series description>/CT*.dcm`` holding several series (thin and thick, brain and bone
kernels).

Labels are the majority of the three reads (at least two of three). One series per scan
is used, chosen by ``SERIES_RULE``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from stroke_lib.data.cohort import Cohort
from stroke_lib.data.dicom import read_ct_series, read_dicom
from stroke_lib.data.pseudonyms import Pseudonyms
from stroke_lib.data.rejects import Collector
from stroke_lib.errors import DataError

READERS = ("R1", "R2", "R3")
SERIES_RULE = ("the series that reads without error, is not a bone-kernel or bone-window "
               "series, has a slice thickness closest to 5 mm, then the most slices, then "
               "the first by name")
TARGET_THICKNESS_MM = 5.0
_SCAN_FOLDER = re.compile(r"^CQ500-?CT-?(\d+)\b", re.IGNORECASE)


def read_reads(path: Path) -> pd.DataFrame:
    """``reads.csv`` as one row per scan: ``name`` and, for every finding all three
    readers scored, the majority (0/1) under the finding's name (``ICH``, ``SDH``...).

    Raises:
        DataError naming the file: missing, unreadable, no ``name`` column, no finding
        scored by all three readers, a duplicated name or a score that is not 0/1.
    """
    if not path.exists():
        raise DataError(path, "reads.csv not found")
    try:
        raw = pd.read_csv(path)
    except Exception as exc:  # pandas raises several types on a malformed table
        raise DataError(path, f"cannot be read as CSV ({exc})") from exc
    if "name" not in raw.columns:
        raise DataError(path, f"no 'name' column; found {list(raw.columns)[:8]}...")
    findings = [c.split(":", 1)[1] for c in raw.columns if c.startswith("R1:")]
    findings = [f for f in findings if all(f"{r}:{f}" in raw.columns for r in READERS)]
    if not findings:
        raise DataError(path, "no finding scored by all three readers (R1:, R2:, R3: columns)")
    dup = raw.name[raw.name.duplicated()].tolist()
    if dup:
        raise DataError(path, f"scan(s) listed more than once: {dup}")
    out = pd.DataFrame({"name": raw.name.astype(str)})
    for finding in findings:
        cells = raw[[f"{r}:{finding}" for r in READERS]].astype(str).apply(lambda c: c.str.strip())
        scores = cells.apply(pd.to_numeric, errors="coerce")
        valid = scores.isin([0, 1]).all(axis=1)
        if not valid.all():
            bad = valid.index[~valid][0]
            raise DataError(path, f"{raw.name[bad]}: {finding} scores "
                            f"{cells.loc[bad].tolist()} are not all 0 or 1")
        out[finding] = (scores.sum(axis=1) >= 2).astype(int)
    return out


def scan_number(name: str) -> int | None:
    """The scan number in ``CQ500-CT-427`` or a folder name ``CQ500CT427 CQ500CT427``."""
    m = _SCAN_FOLDER.match(name.strip())
    return int(m.group(1)) if m else None


def _series_order(series: list[Path]) -> list[Path]:
    """Series of one scan, best first by ``SERIES_RULE`` (bone series left out)."""
    ranked = []
    for folder in series:
        files = sorted(p for p in folder.iterdir() if p.is_file())
        if not files:
            continue
        try:
            ds = read_dicom(files[0], header_only=True)
            text = " ".join([folder.name, str(ds.get("SeriesDescription", "")),
                             str(ds.get("ConvolutionKernel", ""))])
            thickness = float(ds.get("SliceThickness", np.nan))
        except (DataError, TypeError, ValueError):
            text, thickness = folder.name, np.nan
        if "bone" in text.lower():
            continue
        gap = abs(thickness - TARGET_THICKNESS_MM) if np.isfinite(thickness) else np.inf
        ranked.append((gap, -len(files), folder.name, folder))
    return [r[-1] for r in sorted(ranked)]


def load_cq500(root: str | Path, validate: bool = True) -> Cohort:
    """Load CQ500: one series per scan (``SERIES_RULE``) with the majority reads.

    Returns:
        Cohort with columns ``patient_id`` and ``scan_id`` (pseudonyms of the scan name),
        ``site`` ("CQ500"), ``modality`` ("CT"), ``image`` (the chosen series folder),
        ``series`` (its folder name) and one 0/1 column per finding (``ICH``, ``IPH``, ``IVH``,
        ``SDH``, ``EDH``, ``SAH``, ``Fracture``, ``MidlineShift``, ...).

    Raises:
        DataError: reads.csv is missing or malformed.
    """
    root = Path(root)
    reads = read_reads(root / "reads.csv")
    by_number = {scan_number(n): rec for n, rec in zip(reads.name, reads.to_dict("records"))}
    col = Collector(validate)
    aliases = Pseudonyms("cq500")
    rows = []
    scans = sorted(p for p in root.glob("CQ500*") if p.is_dir())
    seen = set()
    for scan in tqdm(scans, desc="reading CQ500", unit="scan", leave=False):
        number = scan_number(scan.name)
        pid = aliases.of(f"CQ500-CT-{number}" if number is not None else scan.name)
        if number not in by_number:
            col.add(pid, scan, "scan folder has no row in reads.csv")
            continue
        seen.add(number)
        candidates = _series_order([p for p in (scan / "Unknown Study").glob("*") if p.is_dir()])
        if not candidates:
            col.add(pid, scan / "Unknown Study", "no non-bone series folder with files")
            continue
        chosen = None
        for folder in candidates:
            if col.check(pid, [folder], read_ct_series):
                chosen = folder
                break
        if chosen is None:
            continue
        labels = {k: v for k, v in by_number[number].items() if k != "name"}
        rows.append({"patient_id": pid, "scan_id": pid.replace("P-", "S-"), "site": "CQ500",
                     "modality": "CT", "image": str(chosen), "series": chosen.name, **labels})
    for number in sorted(set(by_number) - seen):
        col.add(aliases.of(f"CQ500-CT-{number}"), root / "reads.csv",
                f"reads.csv row CQ500-CT-{number} has no scan folder")
    if aliases.mapping:
        aliases.save()
    findings = [c for c in reads.columns if c != "name"]
    columns = ["patient_id", "scan_id", "site", "modality", "image", "series", *findings]
    return Cohort(pd.DataFrame(rows, columns=columns), col.frame(), "cq500", root)
