"""The acute lesion measured by DWI/ADC thresholds: known volumes and the embedded cohort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stroke_lib.data import Volume, read_nifti
from stroke_lib.errors import DataError
from stroke_lib.lesion_features import FEATURES, acute_lesion_mask, lesion_features, measure_lesion


def _pair(spacing=(2.0, 2.0, 5.0), cube=(slice(10, 20), slice(20, 30), slice(8, 12))) -> tuple[Volume, Volume]:
    """A 40 x 50 x 20 brain (ADC 800, DWI 500) with a cube of restricted diffusion."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -np.array([40, 50, 20]) * np.array(spacing) / 2
    rng = np.random.default_rng(0)
    dwi = 500 + rng.normal(0, 10, (40, 50, 20)).astype(np.float32)
    adc = 800 + rng.normal(0, 30, (40, 50, 20)).astype(np.float32)
    dwi[cube] *= 2.2
    adc[cube] = 480
    return Volume(dwi, affine, Path("dwi.nii.gz")), Volume(adc, affine, Path("adc.nii.gz"))


def test_a_known_cube_gives_its_volume_in_ml_and_side():
    dwi, adc = _pair()
    m = measure_lesion(dwi, adc)
    assert m["lesion_ml"] == pytest.approx(10 * 10 * 4 * 2 * 2 * 5 / 1000)  # 8 ml
    # voxels 10-19 on x (R+) lie left of the centre (20): the patient's left
    assert m["left_share"] == 1.0
    assert m["dx_mm"] == pytest.approx((14.5 - 19.5) * 2, abs=0.5)
    assert m["dz_mm"] == pytest.approx((9.5 - 9.5) * 5, abs=0.5)


def test_no_lesion_and_small_specks_give_zero():
    dwi, adc = _pair(cube=(slice(5, 6), slice(5, 6), slice(5, 6)))  # 0.02 ml, below MIN_COMPONENT_ML
    assert measure_lesion(dwi, adc) == {"lesion_ml": 0.0, "left_share": 0.5, "dx_mm": 0.0, "dy_mm": 0.0,
                                        "dz_mm": 0.0}
    assert acute_lesion_mask(dwi, adc, min_component_ml=0.0).sum() == 1


def test_mismatched_shapes_name_the_file():
    dwi, adc = _pair()
    adc = Volume(adc.data[:-1], adc.affine, Path("sub-9_rec-ADC_dwi.nii.gz"))
    with pytest.raises(DataError, match="sub-9_rec-ADC"):
        measure_lesion(dwi, adc)


def test_measured_volume_follows_the_cohort_truth(small_cohort):
    labels = pd.read_csv(small_cohort / "derivatives" / "labels.tsv", sep="\t", dtype={"participant_id": str})
    labels = labels[labels.stroke_type == "ischaemic"].reset_index(drop=True)
    rows = pd.DataFrame({
        "image": [small_cohort / p / "dwi" / f"{p}_rec-TRACE_dwi.nii.gz" for p in labels.participant_id],
        "adc": [small_cohort / p / "dwi" / f"{p}_rec-ADC_dwi.nii.gz" for p in labels.participant_id]})
    measured = lesion_features(rows)
    assert list(measured.columns) == FEATURES and len(measured) == len(labels) >= 6
    # template-space truth vs subject-space measurement (random scale, 5 mm slabs): rank agreement
    rho = stats.spearmanr(measured.lesion_ml, labels.lesion_volume_ml).statistic
    assert rho > 0.8
    # against the written acute-infarct mask of the same subject space: close in ml
    for p, ml in zip(labels.participant_id, measured.lesion_ml):
        mask = read_nifti(small_cohort / "derivatives" / "masks" / p / f"{p}_space-dwi_desc-lesion_mask.nii.gz")
        truth = float((np.round(mask.data) == 1).sum()) * abs(np.linalg.det(mask.affine[:3, :3])) / 1000
        assert ml == pytest.approx(truth, abs=0.5 + 0.4 * truth)
