"""AISD, the Acute Ischemic Stroke Dataset (Liang et al., MICCAI 2021): 397 NCCT scans
(5 mm) with ischaemic lesions contoured on the CT against follow-up DWI.

Layout as released (``image.zip``, ``mask.zip``, ``dicom-*.tar.gz`` unpacked into one
folder): a DICOM series per case under ``image/<case>/CT/`` (or ``dicom/<case>/CT/``) and
one PNG mask per slice under ``mask/<case>/`` (lesion > 0). Mask PNGs are numbered by
slice; ``read_aisd_mask`` stacks them in that order, which this loader assumes is the
series' order from inferior to superior (the release does not state it: check one case
by overlay before trusting a localisation score).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from stroke_lib.data.cohort import Cohort
from stroke_lib.data.dicom import read_ct_series
from stroke_lib.data.pseudonyms import Pseudonyms
from stroke_lib.data.rejects import Collector
from stroke_lib.data.slices import read_png_slice
from stroke_lib.data.volume import Volume
from stroke_lib.errors import DataError

IMAGE_DIRS = ("image", "dicom")


def _slice_number(path: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", path.stem)
    return (int(digits[-1]) if digits else -1, path.name)


def mask_files(folder: Path) -> list[Path]:
    """The PNG masks of one case in slice order (by the last number in the file name)."""
    return sorted(folder.glob("*.png"), key=_slice_number)


def read_aisd_mask(folder: str | Path) -> Volume:
    """A case's PNG masks as one (columns, rows, slices) lesion mask (1 = lesion).

    Raises:
        DataError naming the file: an unreadable PNG, or slices of different sizes;
        naming the folder when it holds no PNG.
    """
    folder = Path(folder)
    files = mask_files(folder)
    if not files:
        raise DataError(folder, "no PNG mask slices")
    planes = [read_png_slice(p).data[:, :, 0] for p in files]
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        raise DataError(folder, f"mask slices differ in size: {sorted(shapes)}")
    return Volume(data=(np.stack(planes, axis=-1) > 0).astype(np.float32), affine=np.eye(4),
                  source=folder)


def load_aisd(root: str | Path, validate: bool = True) -> Cohort:
    """Load AISD: one row per case with its CT series and its mask folder.

    With ``validate`` the series and every mask PNG are read, and a case whose mask has
    another number of slices or another slice size than its CT is rejected.

    Returns:
        Cohort with columns ``patient_id``/``scan_id`` (pseudonyms of the case folder),
        ``site`` ("AISD"), ``modality`` ("CT"), ``image`` (series folder), ``mask`` (PNG
        folder) and ``stroke_type`` ("ischaemic": every case has an infarct).

    Raises:
        DataError naming ``root`` when neither ``image/`` nor ``dicom/`` holds a case.
    """
    root = Path(root)
    series = {}
    for name in IMAGE_DIRS:
        for folder in sorted((root / name).glob("*/CT")):
            series.setdefault(folder.parent.name, folder)
    if not series:
        raise DataError(root, "no case found under image/<case>/CT/ or dicom/<case>/CT/")
    masks = {p.name: p for p in (root / "mask").glob("*") if p.is_dir()}
    col = Collector(validate)
    aliases = Pseudonyms("aisd")
    rows = []
    for case, folder in tqdm(sorted(series.items()), desc="reading AISD", unit="case", leave=False):
        pid = aliases.of(case)
        mask = masks.get(case)
        if mask is None:
            col.add(pid, root / "mask" / case, "case has no mask folder")
            continue
        if validate:
            ct = col.read(pid, folder, read_ct_series)
            lesion = col.read(pid, mask, read_aisd_mask) if ct is not None else None
            if lesion is None:
                continue
            if lesion.data.shape != ct.data.shape:
                col.add(pid, mask, f"mask {lesion.data.shape} (columns, rows, slices) does not "
                        f"fit its CT {ct.data.shape}")
                continue
        rows.append({"patient_id": pid, "scan_id": pid.replace("P-", "S-"), "site": "AISD",
                     "modality": "CT", "image": str(folder), "mask": str(mask),
                     "stroke_type": "ischaemic"})
    for case in sorted(set(masks) - set(series)):
        col.add(aliases.of(case), masks[case], "mask folder has no CT series")
    if aliases.mapping:
        aliases.save()
    columns = ["patient_id", "scan_id", "site", "modality", "image", "mask", "stroke_type"]
    return Cohort(pd.DataFrame(rows, columns=columns), col.frame(), "aisd", root)
