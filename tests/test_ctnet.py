"""Chapter 03's parts: follow-up scans in the embedded cohort, CTNet's 28-slice input, its
residual blocks, the Table 3 baselines, the CT measurements and the tissue shares of maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import ShuffleSplit

from stroke_lib.ct_features import ct_features, measure_ct
from stroke_lib.data import load_embedded, read_ct_series, read_nifti
from stroke_lib.data.synthetic import CohortSpec, generate_cohort
from stroke_lib.data.volume import Volume
from stroke_lib.datasets import ct_dataset, ht_task, strip_skull
from stroke_lib.errors import DataError
from stroke_lib.explain import tissue_shares
from stroke_lib.models.ctnet import (CorrelationCNN, ResidualBlock1, ResidualBlock2, correlation_cnn, ctnet,
                                     plain_cnn, slices_as_channels)
from stroke_lib.preprocess import ct_brain_mask, crop_or_pad_slices
from stroke_lib.train import LeakageError, assert_patient_disjoint, patient_folds


@pytest.fixture(scope="module")
def followup_cohort(tmp_path_factory):
    """Eight subjects; every ischaemic one has two follow-up NCCT scans (rate 1)."""
    root = generate_cohort(CohortSpec(n_subjects=8, in_plane=64, seed=21, followup_rate=1.0),
                           root=tmp_path_factory.mktemp("fu") / "c", progress=False)
    return load_embedded(root)


def test_followups_belong_to_their_patient_and_carry_scan_time(followup_cohort):
    t = followup_cohort.table
    ct = t[t.modality == "CT"]
    isch = ct[ct.stroke_type == "ischaemic"]
    assert len(isch) and (isch.groupby("patient_id").followup.apply(sorted) == pd.Series(
        [[0, 1, 2]] * isch.patient_id.nunique(), index=sorted(isch.patient_id.unique()))).all()
    assert (ct[ct.stroke_type != "ischaemic"].followup == 0).all()
    for pid, scans in isch.groupby("patient_id"):
        scans = scans.sort_values("followup")
        assert scans.scan_id.str.startswith(pid).all() and scans.image.str.contains(f"/{pid}/").all()
        assert scans.hours_from_onset.is_monotonic_increasing and scans.hours_from_onset.iloc[1] > scans.hours_from_onset.iloc[0] + 5
        for col in ("ht", "ht_risk", "lesion_volume_ml", "age", "site"):  # the same labels
            assert scans[col].nunique(dropna=False) == 1
        dwi = t[(t.modality == "DWI") & (t.patient_id == pid)]
        assert dwi.hours_from_onset.iloc[0] == scans.hours_from_onset.iloc[0]


def test_followup_has_its_own_grid_a_darker_infarct_and_masks_that_fit(followup_cohort):
    isch = followup_cohort.table.query("modality == 'CT' and stroke_type == 'ischaemic'")
    pid = isch.sort_values("lesion_volume_ml").patient_id.iloc[-1]
    base, fu = (isch[(isch.patient_id == pid) & (isch.followup == k)].iloc[0] for k in (0, 2))
    ct0, ct2 = read_ct_series(base.image), read_ct_series(fu.image)
    m0, m2 = (np.isin(read_nifti(r["mask"]).data, (1,)) for r in (base, fu))
    assert m0.shape == ct0.data.shape and m2.shape == ct2.data.shape
    assert not np.allclose(ct0.affine, ct2.affine)  # a new head position and field of view
    assert ct2.data[m2].mean() < ct0.data[m0].mean() - 2  # net water uptake goes on
    assert ct_brain_mask(ct2.data)[m2].mean() > 0.8  # the follow-up mask lies in its own brain


def test_followups_never_cross_a_patient_split_and_a_scan_split_leaks(followup_cohort):
    ct = followup_cohort.table.query("modality == 'CT' and stroke_type == 'ischaemic'").reset_index(drop=True)
    y = ct.patient_id.rank(method="dense").astype(int).to_numpy() % 2
    groups = ct.patient_id.to_numpy()
    for tr, te in patient_folds(y, groups, 2, seed=0):
        assert_patient_disjoint(groups[tr], groups[te])
    leaked = 0
    for seed in range(5):
        tr, te = next(ShuffleSplit(1, test_size=0.3, random_state=seed).split(ct))
        try:
            assert_patient_disjoint(groups[tr], groups[te])
        except LeakageError:
            leaked += 1
    assert leaked > 0


def test_baseline_scans_do_not_depend_on_the_followup_rate(tmp_path):
    a = generate_cohort(CohortSpec(n_subjects=3, in_plane=64, seed=21, followup_rate=0.0), root=tmp_path / "a",
                        progress=False)
    b = generate_cohort(CohortSpec(n_subjects=3, in_plane=64, seed=21, followup_rate=1.0), root=tmp_path / "b",
                        progress=False)
    for pid in ("sub-0001", "sub-0002", "sub-0003"):
        ha = read_ct_series(a / "sourcedata/ct" / pid / "NCCT_HEAD").data
        hb = read_ct_series(b / "sourcedata/ct" / pid / "NCCT_HEAD").data
        np.testing.assert_array_equal(ha, hb)
    assert not list((a / "sourcedata/ct").glob("*/NCCT_HEAD_FU*"))


def test_crop_or_pad_keeps_the_brains_slices():
    vol = np.zeros((4, 4, 40), np.float32)
    brain = np.zeros((4, 4, 40), bool)
    brain[:, :, 9:33] = True  # 24 brain slices, off-centre in a 40-slice series
    vol[brain] = 1
    out = crop_or_pad_slices(vol, 28, brain, fill=0.0)
    assert out.shape == (4, 4, 28) and out.sum() == vol.sum()
    short = crop_or_pad_slices(vol[:, :, 9:33], 28, brain[:, :, 9:33], fill=-1.0)
    assert short.shape == (4, 4, 28) and (short == 1).sum() == vol.sum() and (short == -1).sum() == 4 * 4 * 4


def test_ct_dataset_gives_28_slices_of_two_windows_and_strips_the_skull(followup_cohort):
    rows = followup_cohort.table.query("modality == 'CT'").head(3)
    d = ct_dataset(rows, [0, 1, 0], in_plane=32)
    assert d.x.shape == (3, 2, 32, 32, 28) and d.masks.shape == d.brains.shape == d.skull.shape == (3, 32, 32, 28)
    assert float(d.x.min()) >= 0 and float(d.x.max()) <= 1
    assert d.skull.any() and not (d.skull & d.brains).any()
    bone, brain = (float(d.x[:, 0][torch.from_numpy(m)].mean()) for m in (d.skull, d.brains))
    assert bone > 0.75 and bone > brain + 0.25  # bone is white in the brain window (blurred by the resize)
    s = strip_skull(d)
    assert float(s.x[:, :, ~d.brains[0]][0].abs().max()) == 0 and torch.equal(s.x[0][:, d.brains[0]], d.x[0][:, d.brains[0]])


def test_ct_dataset_carries_slice_labels_through_the_crop_and_leaves_out_an_unreadable_scan(followup_cohort):
    rows = followup_cohort.table.query("modality == 'CT'").head(3).reset_index(drop=True)
    hu = read_ct_series(rows.image[0]).data
    crop = crop_or_pad_slices(np.arange(hu.shape[2], dtype=np.float32)[None, None], 28, ct_brain_mask(hu), fill=-1)[0, 0]
    native = int(crop[9])  # the native slice that lands on the 10th of the 28 kept slices
    flags = np.zeros(hu.shape[2], int)
    flags[native] = 1
    rows["flags"] = [flags.tolist()] * 3

    def reader(r):
        if r.name == 1:
            raise DataError(r.image, "pixel data truncated")
        return read_ct_series(r.image)

    d = ct_dataset(rows, [0, 1, 2], in_plane=16, out_slices=14, reader=reader, slice_labels="flags")
    assert d.y.tolist() == [0, 2] and d.rows.scan_id.tolist() == rows.scan_id[[0, 2]].tolist()
    assert len(d.rejected) == 1 and d.rejected[0] == f"{rows.scan_id[1]} left out: {Path(rows.image[1]).name}: pixel data truncated"
    assert d.slice_labels.shape == (2, 14) and np.flatnonzero(d.slice_labels[0]).tolist() == [4]  # slices 8-9 -> 4
    assert d.subset(np.array([1])).slice_labels.shape == (1, 14) and strip_skull(d).slice_labels is d.slice_labels
    with pytest.raises(DataError, match="no CT series could be read"):
        ct_dataset(rows.head(2).iloc[[1]], [1], in_plane=16, reader=reader)


def test_ht_task_labels_every_ischaemic_scan_and_knows_its_ceilings(followup_cohort):
    task = ht_task(followup_cohort.table, "synthetic", 32)
    rows = task.data.rows
    assert (rows.stroke_type == "ischaemic").all() and (task.data.y == rows.ht.astype(int)).all()
    latents = task.latents()
    assert set(latents) == {"oracle ceiling", "image-only ceiling"}
    assert np.allclose(latents["oracle ceiling"], rows.ht_risk)
    bigger = rows.lesion_volume_ml.idxmax(), rows.lesion_volume_ml.idxmin()
    same = rows.hyperdense_artery[bigger[0]] == rows.hyperdense_artery[bigger[1]] and \
        rows.fazekas[bigger[0]] == rows.fazekas[bigger[1]]
    if same:
        assert latents["image-only ceiling"][bigger[0]] > latents["image-only ceiling"][bigger[1]]
    with pytest.raises(ValueError, match="no label for dataset"):
        ht_task(followup_cohort.table, "soop", 32)


def test_ctnet_shapes_for_28_slice_inputs():
    x = torch.randn(2, 2, 48, 48, 28)
    x2 = slices_as_channels(x)
    assert x2.shape == (2, 56, 48, 48)
    assert torch.equal(x2[1, 28 + 5], x[1, 1, :, :, 5]) and torch.equal(x2[0, 3], x[0, 0, :, :, 3])
    for slim in (True, False):
        net = ctnet(56, slim=slim).eval()
        assert net(x2).shape == (2, 1)
    assert ctnet(2, slim=True, spatial_dims=3).eval()(x).shape == (2, 1)
    with pytest.raises(ValueError, match="spatial_dims"):
        ctnet(2, spatial_dims=1)


def test_block_2_changes_dimensions_and_block_1_does_not():
    x = torch.randn(2, 16, 24, 24)
    b1, b2 = ResidualBlock1(16).eval(), ResidualBlock2(16, 32).eval()
    assert b1(x).shape == x.shape
    assert b2(x).shape == (2, 32, 12, 12)
    assert not hasattr(b1, "shortcut") and isinstance(b2.shortcut[0], torch.nn.Conv2d)
    with torch.no_grad():  # block 1's shortcut is the identity: zero body, output relu(x)
        for p in b1.body.parameters():
            p.zero_()
        assert torch.equal(b1(x), torch.relu(x))
    assert ResidualBlock2(4, 8, spatial_dims=3)(torch.randn(1, 4, 8, 8, 8)).shape == (1, 8, 4, 4, 4)
    net = ctnet(56, slim=True)
    kinds = [type(b).__name__ for b in net.blocks]
    assert kinds == ["ResidualBlock1", "ResidualBlock2", "ResidualBlock1", "ResidualBlock2"]


def test_correlation_network_gates_filters_and_plain_cnn_has_none():
    x = torch.randn(3, 56, 32, 32)
    clm, plain = correlation_cnn(56, slim=True).eval(), plain_cnn(56, slim=True).eval()
    assert clm(x).shape == plain(x).shape == (3, 1)
    assert plain.support is None and isinstance(clm, CorrelationCNN)
    before = clm(x).detach().clone()
    with torch.no_grad():
        clm.support[-1].bias.fill_(-5.0)  # nearly closed gates change the prediction
    assert not torch.allclose(clm(x), before)


def test_ct_measurements_see_a_painted_hypodensity_and_hyperdense_vessel(small_cohort):
    ct = read_ct_series(small_cohort / "sourcedata/ct/sub-0001/NCCT_HEAD")
    before = measure_ct(ct)
    hu = ct.data.copy()
    brain = ct_brain_mask(hu)
    k = hu.shape[2] // 2 + 2
    cx, cy = np.argwhere(brain[:, :, k]).mean(0).astype(int)
    x0 = cx + 6  # one hemisphere only: the other side is the reference
    hu[x0:x0 + 6, cy - 4:cy + 4, k - 1:k + 2] -= 12.0
    vessel = (slice(cx - 8, cx - 6), slice(cy, cy + 3), slice(k, k + 2))
    hu[vessel] = 70.0
    after = measure_ct(Volume(hu, ct.affine, ct.source))
    assert after["infarct_ml"] > before["infarct_ml"] + 0.5
    assert after["hyperdense_ml"] > before["hyperdense_ml"]
    assert all(np.isfinite(v) for v in after.values())


def test_ct_measurements_in_two_processes_equal_those_in_one(small_cohort):
    folders = sorted((small_cohort / "sourcedata/ct").glob("sub-*/NCCT_HEAD"))[:4]
    rows = pd.DataFrame({"image": [str(f) for f in folders]}, index=[10, 11, 12, 13])
    one, two = ct_features(rows, workers=1), ct_features(rows, workers=2)
    pd.testing.assert_frame_equal(one, two)
    assert list(two.index) == [10, 11, 12, 13] and two.loc[10].to_dict() == measure_ct(read_ct_series(folders[0]))


def test_tissue_shares_of_2d_maps_read_across_slices():
    tissue = np.zeros((2, 4, 4, 10), bool)
    tissue[:, :2] = True  # left half is "bone" on every slice
    tissue[1, :2, :, 5:] = False  # sample 1: bone on half of its slices only
    maps = np.zeros((2, 4, 4))
    maps[:, :2] = 1.0  # all energy on the left half
    out = tissue_shares(maps, {"bone": tissue, "rest": ~tissue}, n_boot=50)
    assert out.loc["bone", "share"] == pytest.approx((1.0 + 0.5) / 2)
    assert out.loc["bone", "share"] + out.loc["rest", "share"] == pytest.approx(1.0)
    assert out.loc["bone", "uniform map"] == pytest.approx((0.5 + 0.25) / 2)


def test_a_cohort_at_another_ht_rate_reuses_the_images_and_equals_a_fresh_one(tmp_path):
    import hashlib

    def digest(root):
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    base = CohortSpec(n_subjects=4, in_plane=64, seed=8, followup_rate=0.5)
    matched = CohortSpec(n_subjects=4, in_plane=64, seed=8, followup_rate=0.5, ht_base_rate=0.5)
    first = generate_cohort(base, root=tmp_path / "shared" / base.key(), progress=False)
    before = digest(first)
    derived = generate_cohort(matched, root=tmp_path / "shared" / matched.key(), progress=False)
    fresh = generate_cohort(matched, root=tmp_path / "alone" / matched.key(), progress=False)
    assert digest(derived) == digest(fresh)
    assert digest(first) == before  # the sibling is untouched
    image = "sourcedata/ct/sub-0001/NCCT_HEAD/IM0001.dcm"
    assert (derived / image).stat().st_ino == (first / image).stat().st_ino  # linked, not rendered again
    ht = [pd.read_csv(r / "derivatives/labels.tsv", sep="\t").ht_risk for r in (first, derived)]
    isch = ht[0].notna()
    assert (ht[1][isch] > ht[0][isch]).all()
