"""Manifests, the data check command, and preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from stroke_lib.__main__ import main
from stroke_lib.data.manifests import check_dataset, load_manifest, manifest_names
from stroke_lib.preprocess import (
    crop_or_pad_slices, ct_brain_mask, lesion_concat, normalize_mri, resample, window, window_stack,
)
from stroke_lib.data import read_ct_series

EXPECTED = {"synthetic", "soop", "rsna_ich_2019", "aisd", "isles_2022", "isles_2024", "cq500",
            "teknofest_2021"}


def test_every_manifest_is_complete():
    assert set(manifest_names()) == EXPECTED
    for name in EXPECTED:
        m = load_manifest(name)
        for key in ("title", "source", "licence", "citation", "modality", "subjects", "layout",
                    "labels", "download", "default_location", "loader"):
            assert m.get(key), (name, key)
        assert isinstance(m["chapters"], dict) and all(isinstance(v, str) and v for v in m["chapters"].values()), name
        assert m["source"]["url"]
        assert m["default_location"].startswith("<data directory>/")


def test_every_chapter_a_manifest_names_accepts_that_dataset():
    """The real-data table of chapter 06 comes from the manifests: each chapter a manifest
    names must take the dataset in its dataset (or, chapter 05, source) parameter."""
    from stroke_lib.book import declared_parameters
    for name in EXPECTED - {"synthetic"}:
        for chapter in load_manifest(name)["chapters"]:
            declared = declared_parameters(chapter)
            helps = " ".join(declared[p]["help"] for p in ("dataset", "source") if p in declared)
            assert name in helps, (name, chapter, helps)


def test_check_empty_folder_names_each_missing_file(tmp_path, capsys):
    report = check_dataset("soop", tmp_path)
    assert not report.ok
    assert "participants.tsv" in report.missing and "dataset_description.json" in report.missing
    assert main(["data", "check", "soop", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "missing: participants.tsv" in out


def test_check_embedded_cohort_passes(small_cohort):
    report = check_dataset("synthetic", small_cohort)
    assert report.ok and report.subjects == 16


def test_check_names_a_missing_subject_file(small_cohort, tmp_path):
    import shutil
    root = tmp_path / "c"
    shutil.copytree(small_cohort, root)
    (root / "sub-0003/dwi/sub-0003_rec-ADC_dwi.nii.gz").unlink()
    report = check_dataset("synthetic", root)
    assert report.missing == ["sub-0003/dwi/sub-0003_rec-ADC_dwi.nii.gz"]


def test_window():
    hu = np.array([-1000.0, 0.0, 40.0, 80.0, 2000.0])
    np.testing.assert_allclose(window(hu, 40, 80), [0, 0, 0.5, 1, 1])
    np.testing.assert_allclose(window(hu, 40, 20), [0, 0, 0.5, 1, 1])
    assert window_stack(hu, [(40, 80), (40, 20)]).shape == (2, 5)


def test_crop_or_pad_centres_on_brain():
    vol = np.zeros((4, 4, 40), np.float32)
    mask = np.zeros_like(vol, bool)
    mask[:, :, 10:20] = True
    vol[:, :, 10:20] = 1
    out = crop_or_pad_slices(vol, 28, mask)
    assert out.shape == (4, 4, 28) and out.sum() == vol.sum()
    padded = crop_or_pad_slices(vol[:, :, :20], 28, fill=-5)
    assert padded.shape == (4, 4, 28) and (padded == -5).sum() == 4 * 4 * 8


def test_lesion_concat_neighbours():
    vol = np.arange(5, dtype=np.float32)[None, None, :].repeat(2, 0).repeat(2, 1)
    out = lesion_concat(vol, 3)
    assert out.shape == (5, 3, 2, 2)
    np.testing.assert_array_equal(out[0, :, 0, 0], [0, 0, 1])
    np.testing.assert_array_equal(out[2, :, 0, 0], [1, 2, 3])
    with pytest.raises(ValueError):
        lesion_concat(vol, 2)


def test_brain_mask_and_resample(small_cohort):
    ct = read_ct_series(small_cohort / "sourcedata/ct/sub-0001/NCCT_HEAD")
    mask = ct_brain_mask(ct.data)
    ml = mask.sum() * np.prod(ct.spacing) / 1000
    assert 800 < ml < 2000  # a brain, not the head
    assert ct.data[mask].max() <= 100
    out, affine = resample(ct.data, ct.affine, (6.0, 6.0, 10.0))
    assert np.allclose(np.abs(np.diag(affine)[:3]), (6, 6, 10))
    assert out.shape[2] == pytest.approx(ct.data.shape[2] / 2, abs=1)


def test_normalize_mri_within_brain():
    rng = np.random.default_rng(0)
    vol = rng.normal(500, 50, (10, 10, 10)).astype(np.float32)
    brain = np.zeros_like(vol, bool)
    brain[2:8, 2:8, 2:8] = True
    out = normalize_mri(vol, brain, "zscore")
    assert abs(out[brain].mean()) < 1e-5 and abs(out[brain].std() - 1) < 1e-3
    robust = normalize_mri(vol, brain)
    assert abs(np.median(robust[brain])) < 1e-5
    assert np.subtract(*np.percentile(robust[brain], [75, 25])) == pytest.approx(1.349, rel=1e-3)
    assert (out[~brain] == 0).all()


def test_robust_normalisation_ignores_a_bright_lesion():
    rng = np.random.default_rng(1)
    vol = rng.normal(500, 50, (20, 20, 20)).astype(np.float32)
    brain = np.ones_like(vol, bool)
    with_lesion = vol.copy()
    lesion = np.zeros_like(brain)
    lesion[2:8, 2:8, 2:8] = True  # 2.7 % of the brain, three times as bright
    with_lesion[lesion] *= 3
    normal = ~lesion
    robust = np.abs(normalize_mri(with_lesion, brain)[normal] - normalize_mri(vol, brain)[normal])
    zscore = np.abs(normalize_mri(with_lesion, brain, "zscore")[normal]
                    - normalize_mri(vol, brain, "zscore")[normal])
    assert robust.mean() < 0.05 and zscore.mean() > 0.5  # in units of normal tissue's sd
    with pytest.raises(ValueError, match="unknown method"):
        normalize_mri(vol, brain, "minmax")
