"""Damage copies of good files in the ways real data goes wrong.

The tests write their bad inputs with these, and the data chapter uses them to show the
rejects table on a damaged copy of a few embedded subjects. Every function changes the
files in place; call it on a copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom


def copy_subjects(root: Path, dest: Path, n: int = 4) -> list[str]:
    """Copy the first ``n`` subjects of an embedded cohort (DWI, ADC, CT series and their
    participants.tsv rows) into ``dest``, in the same layout; returns their IDs."""
    root, dest = Path(root), Path(dest)
    part = pd.read_csv(root / "participants.tsv", sep="\t", dtype={"participant_id": str})
    ids = list(part.participant_id[:n])
    for pid in ids:
        shutil.copytree(root / pid, dest / pid)
        shutil.copytree(root / "sourcedata" / "ct" / pid, dest / "sourcedata" / "ct" / pid)
    part[part.participant_id.isin(ids)].to_csv(dest / "participants.tsv", sep="\t", index=False)
    return ids


def _slices(series: Path) -> list[Path]:
    return sorted(p for p in Path(series).iterdir() if p.suffix == ".dcm")


def truncate_file(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes, as an interrupted copy does."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def drop_slice(series: Path, index: int | None = None) -> Path:
    """Delete one slice from the middle of a series (a gap); returns the deleted path."""
    files = _slices(series)
    victim = files[len(files) // 2 if index is None else index]
    victim.unlink()
    return victim


def duplicate_slice_position(series: Path) -> Path:
    """Give one slice the position of its neighbour; returns the changed file."""
    files = sorted(_slices(series), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    src, dst = files[len(files) // 2], files[len(files) // 2 + 1]
    ds = pydicom.dcmread(dst)
    ds.ImagePositionPatient = pydicom.dcmread(src).ImagePositionPatient
    ds.save_as(dst)
    return dst


def remove_tag(series: Path, keyword: str = "RescaleIntercept") -> list[Path]:
    """Delete a DICOM attribute from every slice of a series."""
    files = _slices(series)
    for path in files:
        ds = pydicom.dcmread(path)
        delattr(ds, keyword)
        ds.save_as(path)
    return files


def set_patient_name(series: Path, name: str) -> list[Path]:
    """Write a patient name into every slice (a scan that was not de-identified)."""
    files = _slices(series)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.PatientName = name
        ds.save_as(path)
    return files


def add_nans(path: Path, fraction: float = 0.01, seed: int = 0) -> Path:
    """Set a random ``fraction`` of a NIfTI's voxels to NaN (float images)."""
    img = nib.load(path)
    data = img.get_fdata(dtype=np.float32)
    rng = np.random.default_rng(seed)
    data[rng.random(data.shape) < fraction] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
    return Path(path)


def reorient_to_lps(path: Path) -> Path:
    """Rewrite a RAS NIfTI with its first two axes flipped (LPS), same anatomy."""
    img = nib.load(path)
    flipped = img.as_reoriented(np.array([[0, -1], [1, -1], [2, 1]]))
    nib.save(flipped, path)
    return Path(path)


def drop_column(tsv: Path, column: str = "nihss") -> Path:
    """Remove a column from a tab-separated table."""
    df = pd.read_csv(tsv, sep="\t", dtype=str)
    df.drop(columns=[column]).to_csv(tsv, sep="\t", index=False)
    return Path(tsv)

#: The name ``set_patient_name`` writes in the data chapter; the tests check that it
#: never reaches a table, a notebook output or the built book.
EXAMPLE_PATIENT_NAME = "Testperson^Erika^Marie"
