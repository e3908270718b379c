"""Benchmark: reading scans, the project's readers beside MONAI's and the plain libraries.

    python benchmarks/loaders.py [--subjects 8] [--in-plane 64] [--repeats 3]

On one small embedded cohort (generated into a temporary folder), in one run:
- a CT series: ``stroke_lib.data.read_ct_series`` (every check of the data layer) with
  its series cache off, so every read decodes; the same reader as a later process meets a
  series decoded before (a copy from the cache folder, ``stroke_lib.data.read_cache``);
  MONAI's ``LoadImage`` with its pydicom reader, and plain pydicom (read every file, sort
  by position, rescale: no checks), in slices/s, with the ratios to plain pydicom;
- a DWI NIfTI: ``stroke_lib.data.read_nifti`` (reorientation to RAS and its checks),
  MONAI's ``LoadImage`` (nibabel reader) and plain nibabel (``get_fdata``), in files/s;
- ``load_embedded``, what ``load_dataset("synthetic")`` runs once the cohort exists: the
  whole cohort table (every CT series and DWI/ADC pair read and checked) with its
  rejects, in milliseconds per scan, decoding every series (cache off).
Each figure is the best of ``--repeats`` runs (steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: its bars would mix with the figures

import nibabel as nib
import numpy as np
import pydicom

from stroke_lib.benchmark_records import write_benchmark
from stroke_lib.data import CohortSpec, dicom, read_ct_series, read_nifti
from stroke_lib.data.cohort import load_embedded
from stroke_lib.data.read_cache import ReadCache
from stroke_lib.data.synthetic import generate_cohort


def _best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _plain_pydicom(folder: Path) -> np.ndarray:
    datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    datasets.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets], -1)


def _age(root: Path, seconds: float = 60.0) -> None:
    """Date every file under ``root`` a minute back: files younger than the cache's racy
    window (``read_cache.RACY_SECONDS``) are never cached, which a cohort written just now is."""
    old = time.time() - seconds
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--in-plane", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", default=None, help="folder of the record (default benchmarks/records)")
    args = parser.parse_args()
    from monai.transforms import LoadImage

    with tempfile.TemporaryDirectory() as tmp:
        spec = CohortSpec(n_subjects=args.subjects, in_plane=args.in_plane, seed=7)
        root = generate_cohort(spec, root=Path(tmp) / "cohort", progress=False)
        series = sorted((root / "sourcedata" / "ct").glob("*/NCCT_HEAD"))
        dwis = sorted(root.glob("sub-*/dwi/*_rec-TRACE_dwi.nii.gz"))
        n_slices = sum(len(list(s.glob("*.dcm"))) for s in series)
        monai_dicom = LoadImage(reader="PydicomReader", image_only=True)
        monai_nifti = LoadImage(reader="NibabelReader", image_only=True)
        _age(root)
        no_cache = ReadCache(max_bytes=0)
        from_folder = ReadCache(max_bytes=0, folder=lambda: Path(tmp) / "cache", version=dicom.READER_VERSION)

        def reads(cache: ReadCache) -> Callable[[], list]:
            def run() -> list:
                dicom.SERIES_CACHE = cache
                return [read_ct_series(s) for s in series]
            return run

        reads(from_folder)()  # decoded once, as an earlier chapter did
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ct = {"stroke_lib read_ct_series": reads(no_cache),
                  "stroke_lib read_ct_series, decoded before (cache folder)": reads(from_folder),
                  "MONAI LoadImage (PydicomReader)": lambda: [monai_dicom(str(s)) for s in series],
                  "plain pydicom (no checks)": lambda: [_plain_pydicom(s) for s in series]}
            ct_s = {k: _best(f, args.repeats) for k, f in ct.items()}
            mr = {"stroke_lib read_nifti": lambda: [read_nifti(p) for p in dwis],
                  "MONAI LoadImage (NibabelReader)": lambda: [monai_nifti(str(p)) for p in dwis],
                  "plain nibabel get_fdata": lambda: [nib.load(p).get_fdata() for p in dwis]}
            mr_s = {k: _best(f, args.repeats) for k, f in mr.items()}
            dicom.SERIES_CACHE = no_cache
            cohort_s = _best(lambda: load_embedded(root), args.repeats)
            n_scans = len(load_embedded(root).table)
    print(f"{len(series)} CT series ({n_slices} slices, {args.in_plane} px), {len(dwis)} DWI files, "
          f"{os.cpu_count()} cores, best of {args.repeats}")
    rows = []
    base = ct_s["plain pydicom (no checks)"]
    for k, s in ct_s.items():
        rows.append({"format": "CT (DICOM)", "reader": k, "seconds": s, "per second": n_slices / s, "unit": "slices",
                     "x plain library's time": s / base})
        print(f"  CT   {k:56s} {n_slices / s:8.0f} slices/s  {s / base:5.2f}x plain pydicom's time")
    base = mr_s["plain nibabel get_fdata"]
    for k, s in mr_s.items():
        rows.append({"format": "DWI (NIfTI)", "reader": k, "seconds": s, "per second": len(dwis) / s, "unit": "files",
                     "x plain library's time": s / base})
        print(f"  NIfTI {k:33s} {len(dwis) / s:8.1f} files/s   {s / base:5.2f}x plain nibabel's time")
    rows.append({"format": "cohort table", "reader": "load_embedded", "seconds": cohort_s, "per second": n_scans / cohort_s,
                 "unit": "scans", "x plain library's time": None})
    print(f"  load_embedded (load_dataset('synthetic')): {cohort_s:.2f} s for {n_scans} scans, "
          f"{1000 * cohort_s / n_scans:.0f} ms per scan")
    write_benchmark("loaders", rows, "cpu", vars(args), args.record)


if __name__ == "__main__":
    main()
