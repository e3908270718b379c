"""Data layer: the embedded cohort, readers of real datasets, and the ``Cohort`` table.

``load_dataset(name, data_root)`` is what a chapter calls: ``"synthetic"`` generates
(once, cached) and loads the embedded cohort; a manifest name loads that dataset from
``data_root`` with its loader.
"""

from __future__ import annotations

from pathlib import Path

from stroke_lib.data.cohort import (
    Cohort,
    load_ct_series_folders,
    load_embedded,
    load_isles22,
    load_soop,
)
from stroke_lib.data.dicom import read_ct_series
from stroke_lib.data.nifti import read_nifti
from stroke_lib.data.synthetic import CohortSpec, generate_cohort
from stroke_lib.data.volume import Volume

LOADERS = {
    "soop": load_soop,
    "isles_2022": load_isles22,
    "cq500": lambda root: load_ct_series_folders(root, "CQ500CT*/Unknown Study/*", site="CQ500"),
}

__all__ = ["Cohort", "CohortSpec", "Volume", "load_dataset", "read_ct_series", "read_nifti",
           "generate_cohort", "load_embedded", "load_soop", "load_isles22",
           "load_ct_series_folders"]


def load_dataset(
    name: str = "synthetic", data_root: str | Path | None = None, spec: CohortSpec | None = None
) -> Cohort:
    """Load a dataset as a ``Cohort``.

    Args:
        name: ``"synthetic"`` or a manifest name with a loader (``LOADERS``).
        data_root: the dataset folder (real datasets only).
        spec: embedded cohort parameters (``"synthetic"`` only).
    """
    if name == "synthetic":
        return load_embedded(generate_cohort(spec or CohortSpec()))
    if name not in LOADERS:
        raise ValueError(f"no loader for dataset {name!r}; loaders exist for "
                         f"synthetic, {', '.join(sorted(LOADERS))}")
    if data_root is None:
        raise ValueError(f"dataset {name!r} needs data_root, the folder it was downloaded to")
    return LOADERS[name](Path(data_root))
