"""TEKNOFEST 2021 stroke CT (Turkish Ministry of Health): 2D slices in class folders.

Layout: one folder per class, ``İnme Yok`` (no stroke), ``İskemi`` (ischaemic) and
``Kanama`` (haemorrhagic), each holding ``PNG/`` and/or ``DICOM/`` slices, and for the
stroke classes ``OVERLAY/`` PNG masks of the same names. Redistributions rename the class
folders in English (``Non-Stroke``, ``Ischemic``, ``Hemorrhagic``) or nest them (e.g. under
``Training/``); the loader finds them by name, whatever the case, accents (Turkish İ/ı) or
Unicode normal form of the unzipped names.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from stroke_lib.data.cohort import Cohort
from stroke_lib.data.rejects import Collector
from stroke_lib.data.slices import read_slice
from stroke_lib.errors import DataError

#: Class -> folder names (folded: lower case, no accents) that hold it.
CLASS_FOLDERS = {
    "none": ("inme yok", "non-stroke", "non stroke", "no stroke", "normal"),
    "ischaemic": ("iskemi", "ischemic", "ischaemic", "ischemia"),
    "haemorrhagic": ("kanama", "hemorrhagic", "haemorrhagic", "hemorrhage", "bleeding"),
}
MASK_FOLDERS = ("overlay", "mask", "masks")
IMAGE_SUFFIXES = (".png", ".dcm")


def fold(name: str) -> str:
    """A folder name compared without case, accents, Unicode form, '_' or dotless ı."""
    text = unicodedata.normalize("NFKD", name).replace("ı", "i")
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(text.lower().replace("_", " ").split())


def class_folders(root: Path) -> dict[str, list[Path]]:
    """Class -> the folders under ``root`` (any depth) whose name names that class."""
    names = {alias: cls for cls, aliases in CLASS_FOLDERS.items() for alias in aliases}
    found: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        cls = names.get(fold(folder.name))
        if cls and not any(names.get(fold(parent.name)) for parent in folder.parents):
            found.setdefault(cls, []).append(folder)
    return found


def load_teknofest(root: str | Path, validate: bool = True) -> Cohort:
    """Load TEKNOFEST 2021 as one row per slice.

    A slice given as both PNG and DICOM (same file name) is one row: ``image`` is the
    DICOM (Hounsfield units), ``png`` the PNG. The release has no patient IDs, so each
    slice is its own ``patient_id`` (``TF-<file name>``): a split cannot keep one
    patient's slices together, as the release's own split could not.

    Returns:
        Cohort with columns ``patient_id, scan_id, site, modality, image, png, dicom,
        overlay, stroke_type`` (``none``/``ischaemic``/``haemorrhagic``) and ``stroke``
        (0/1).

    Raises:
        DataError naming ``root`` when no class folder is found.
    """
    root = Path(root)
    classes = class_folders(root)
    if not classes:
        raise DataError(root, "no class folder found (expected İnme Yok, İskemi, Kanama)")
    col = Collector(validate)
    slices: dict[str, dict[str, object]] = {}
    for cls, folders in classes.items():
        for folder in folders:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                kind = path.suffix.lower()
                in_mask = any(fold(p.name) in MASK_FOLDERS for p in path.relative_to(folder).parents)
                if kind not in IMAGE_SUFFIXES or path.name.startswith("."):
                    continue
                rec = slices.setdefault(path.stem, {"stroke_type": cls})
                if rec["stroke_type"] != cls:
                    col.add(f"TF-{path.stem}", path, f"slice {path.stem} is in two class folders "
                            f"({rec['stroke_type']} and {cls}): label unknown")
                    rec["conflict"] = True
                key = "overlay" if in_mask else kind.lstrip(".").replace("dcm", "dicom")
                rec[key] = str(path)
    rows = []
    bar = dict(desc="reading TEKNOFEST", unit="slice", leave=False)
    for stem, rec in tqdm(sorted(slices.items()), **bar):
        pid = f"TF-{stem}"
        if rec.get("conflict"):
            continue
        image = rec.get("dicom") or rec.get("png")
        if image is None:
            col.add(pid, rec["overlay"], "overlay without its image")
            continue
        if not col.check(pid, [Path(image)], read_slice):
            continue
        rows.append({"patient_id": pid, "scan_id": pid, "site": "TEKNOFEST",
                     "modality": "CT slice", "image": image, "png": rec.get("png", ""),
                     "dicom": rec.get("dicom", ""), "overlay": rec.get("overlay", ""),
                     "stroke_type": rec["stroke_type"], "stroke": int(rec["stroke_type"] != "none")})
    columns = ["patient_id", "scan_id", "site", "modality", "image", "png", "dicom", "overlay",
               "stroke_type", "stroke"]
    return Cohort(pd.DataFrame(rows, columns=columns), col.frame(), "teknofest_2021", root)
