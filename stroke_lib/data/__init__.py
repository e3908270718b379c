"""Data layer: the embedded cohort, readers of real datasets, and the ``Cohort`` table.

``load_dataset(name, data_root)`` is what a chapter calls: ``"synthetic"`` generates
(once, cached) and loads the embedded cohort; a manifest name loads that dataset with the
loader its manifest names (``loader:``), from ``data_root`` or, when that is empty, from
the manifest's ``default_location``: ``stroke_lib.paths.data_dir() / name``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from stroke_lib.data.cohort import (
    Cohort,
    load_ct_series_folders,
    load_embedded,
    load_isles22,
    load_soop,
)
from stroke_lib.data.aisd import load_aisd
from stroke_lib.data.cq500 import load_cq500
from stroke_lib.data.dicom import read_ct_series
from stroke_lib.data.isles24 import load_isles24
from stroke_lib.data.manifests import load_manifest, manifest_names
from stroke_lib.data.nifti import read_nifti
from stroke_lib.data.rsna import load_rsna_ich
from stroke_lib.data.teknofest import load_teknofest
from stroke_lib.data.synthetic import CohortSpec, generate_cohort
from stroke_lib.data.volume import Volume
from stroke_lib.errors import DataError
from stroke_lib.paths import data_dir

__all__ = ["Cohort", "CohortSpec", "Volume", "load_dataset", "dataset_root", "loaders",
           "read_ct_series", "read_nifti", "generate_cohort", "load_embedded", "load_soop",
           "load_isles22", "load_cq500", "load_ct_series_folders", "load_rsna_ich",
           "load_teknofest", "load_aisd", "load_isles24"]

_PREFIX = "stroke_lib.data."


def loaders() -> dict[str, Callable[..., Cohort]]:
    """Real dataset name -> the loader its manifest names (datasets without one omitted)."""
    out = {}
    for name in manifest_names():
        target = load_manifest(name).get("loader")
        if name != "synthetic" and target:
            if not target.startswith(_PREFIX):
                raise ValueError(f"manifest {name}: loader {target!r} is not in stroke_lib.data")
            out[name] = getattr(sys.modules[__name__], target[len(_PREFIX):])
    return out


def dataset_root(name: str, data_root: str | Path | None = None) -> Path:
    """The folder of real dataset ``name``: ``data_root``, or when that is None or ``""``
    the manifest's default location ``data_dir() / name``.

    Raises:
        DataError naming the folder when it does not exist, with the manifest's download
        instructions.
    """
    root = Path(data_root) if data_root not in (None, "") else data_dir() / name
    if not root.is_dir():
        how = load_manifest(name).get("download", "see its manifest")
        raise DataError(root, f"dataset folder for {name!r} not found. Download it there "
                        f"({how}), or pass data_root= the folder it is in")
    return root


def load_dataset(
    name: str = "synthetic", data_root: str | Path | None = None, spec: CohortSpec | None = None,
    modalities: tuple[str, ...] = ("DWI", "CT"),
) -> Cohort:
    """Load a dataset as a ``Cohort``.

    Args:
        name: ``"synthetic"`` or a manifest name whose manifest names a loader.
        data_root: the dataset folder (real datasets only); None or ``""`` reads the
            default location ``stroke_lib.paths.data_dir() / name``.
        spec: embedded cohort parameters (``"synthetic"`` only).
        modalities: the embedded cohort's modalities to read (``load_embedded``); a real
            dataset has the modalities its loader reads.

    Raises:
        ValueError: no loader for ``name``. DataError: the dataset folder is missing (named,
        with how to download it) or a file every scan needs (participants.tsv, a label
        table) is unusable.
    """
    if name == "synthetic":
        return load_embedded(generate_cohort(spec or CohortSpec()), modalities=modalities)
    available = loaders()
    if name not in available:
        raise ValueError(f"no loader for dataset {name!r}; loaders exist for "
                         f"synthetic, {', '.join(sorted(available))}")
    return available[name](dataset_root(name, data_root))
