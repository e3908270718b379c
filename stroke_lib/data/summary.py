"""Measurements of a cohort read back from its files, for the data chapter's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stroke_lib.data.nifti import read_nifti


def lesion_contrast(rows: pd.DataFrame, labels: dict[int, tuple[str, str]]) -> pd.DataFrame:
    """How each lesion type looks on DWI b1000 and ADC, measured in the written files.

    For every DWI row with a lesion mask, the mean of each lesion label inside the brain
    (ADC > 0) over the mean of the brain outside every lesion; then, per label, the
    median of those ratios over subjects and the number of subjects.

    Args:
        rows: cohort rows with ``image`` (DWI trace), ``adc`` and ``mask`` (lesion labels).
        labels: label value -> (name, colour), e.g. ``stroke_lib.plots.LESION_STYLES``.

    Returns:
        One row per lesion name: ``subjects``, ``DWI b1000 / normal brain``,
        ``ADC / normal brain`` (ratios; 1 is no contrast).
    """
    ratios: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in labels.values()}
    for r in rows.itertuples():
        if not isinstance(getattr(r, "mask", None), str):
            continue
        mask = read_nifti(r.mask).data
        present = [v for v in labels if (mask == v).any()]
        if not present:
            continue
        dwi, adc = read_nifti(r.image).data, read_nifti(r.adc).data
        brain = adc > 0
        normal = brain & (mask == 0)
        for value in present:
            inside = brain & (mask == value)
            if inside.sum() < 5:
                continue
            ratios[labels[value][0]].append((dwi[inside].mean() / dwi[normal].mean(),
                                             adc[inside].mean() / adc[normal].mean()))
    table = {name: {"subjects": len(v),
                    "DWI b1000 / normal brain": float(np.median([a for a, _ in v])) if v else np.nan,
                    "ADC / normal brain": float(np.median([b for _, b in v])) if v else np.nan}
             for name, v in ratios.items()}
    return pd.DataFrame(table).T.round({"DWI b1000 / normal brain": 2, "ADC / normal brain": 2})
