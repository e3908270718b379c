"""Slice models of chapter 04: per-slice CNN, pooling or a recurrent network over slices,
scans of different slice counts, a frozen encoder, and the stroke-type inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stroke_lib.data import load_embedded
from stroke_lib.datasets import STROKE_TYPES, augmentation, stroke_type_task
from stroke_lib.explain import gradcam
from stroke_lib.models.slices import AGGREGATIONS, GRADCAM_LAYER, SliceClassifier, slice_classifier
from stroke_lib.train import TrainConfig, fit


@pytest.mark.parametrize("aggregation", [a for a in AGGREGATIONS if a != "centre"])
def test_a_scan_gives_the_same_output_alone_or_padded_in_a_batch(aggregation):
    torch.manual_seed(0)
    model = slice_classifier(2, 3, aggregation, slim=True).eval()
    short, long = torch.randn(1, 2, 16, 16, 5), torch.randn(1, 2, 16, 16, 9)
    padded = torch.zeros(1, 2, 16, 16, 9)
    padded[..., :5] = short
    with torch.no_grad():
        alone = model(short)
        batch = model(torch.cat([padded, long]), torch.tensor([5, 9]))
        long_alone = model(long)
        unmasked = model(torch.cat([padded, long]))
    assert batch.shape == (2, 3)
    torch.testing.assert_close(batch[0], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch[1], long_alone[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(unmasked[0], alone[0], atol=1e-4)  # without lengths the padding counts


def test_attention_weights_are_a_distribution_over_slices():
    model = slice_classifier(1, 1, "attention", slim=True).eval()
    with torch.no_grad():
        w = model.slice_attention(torch.randn(3, 1, 16, 16, 7))
    assert w.shape == (3, 7) and torch.allclose(w.sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="attention"):
        slice_classifier(1, 1, "gru", slim=True).slice_attention(torch.randn(1, 1, 16, 16, 3))
    with pytest.raises(ValueError, match="aggregation"):
        SliceClassifier(1, 1, "sum")


def test_context_makes_a_slice_see_its_neighbours():
    torch.manual_seed(0)
    model = slice_classifier(1, 1, "mean", slim=True, context=1).eval()
    x = torch.randn(1, 1, 16, 16, 6)
    changed = x.clone()
    changed[..., 3] += 5.0
    with torch.no_grad():
        e0, e1 = model.embed(x), model.embed(changed)
    moved = (e0 - e1).abs().sum(-1)[0]
    assert moved[2] > 0 and moved[4] > 0 and moved[3] > 0  # slice 3 and its neighbours
    assert moved[0] == 0 and moved[5] == 0  # two slices away: untouched


def test_a_frozen_encoder_does_not_change_during_fine_tuning():
    torch.manual_seed(0)
    model = slice_classifier(1, 3, "gru", slim=True)
    model(torch.randn(4, 1, 16, 16, 5))  # any state
    model.freeze_encoder()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    head_before = model.head.weight.clone()
    x = torch.randn(24, 1, 16, 16, 5)
    y = np.arange(24) % 3
    fit(model, x, y, x, y, TrainConfig(epochs=2, device="cpu", progress=False, classes=3, lr=1e-2))
    after = model.encoder.state_dict()
    for name, value in before.items():  # weights and BatchNorm statistics
        torch.testing.assert_close(after[name], value, rtol=0, atol=0)
    assert not torch.equal(model.head.weight, head_before)
    model.train()
    assert not model.encoder.training and model.head.training


def test_gradcam_gives_one_map_per_slice_on_the_scan_grid():
    torch.manual_seed(0)
    model = slice_classifier(2, 3, "attention", slim=True)
    maps = gradcam(model, torch.randn(3, 2, 16, 16, 5), GRADCAM_LAYER, class_idx=None)
    assert maps.shape == (3, 16, 16, 5)
    assert np.isfinite(maps).all() and maps.max() <= 1.0


def test_flip_augmentation_mirrors_left_and_right():
    x = torch.zeros(1, 8, 8, 4)
    x[0, 0] = 1.0  # the left-most column
    aug = augmentation(rotate_deg=0, translate_vox=0, scale=0, flip=True)
    aug.set_random_state(seed=0)
    seen = {int(torch.as_tensor(aug(x))[0, :, 4, 2].argmax()) for _ in range(20)}
    assert seen == {0, 7}


def test_stroke_type_task_on_the_embedded_cohort(small_cohort):
    table = load_embedded(small_cohort).table
    task = stroke_type_task(table, "synthetic", 16, n_slices=6)
    baseline = table[(table.modality == "CT") & (table.followup == 0)].sort_values("patient_id")
    assert task.ct.x.shape == (len(baseline), 3, 16, 16, 6) and task.mri.x.shape == (len(baseline), 2, 16, 16, 6)
    assert task.classes == STROKE_TYPES
    expected = baseline.stroke_type.map({c: k for k, c in enumerate(STROKE_TYPES)}).to_numpy()
    np.testing.assert_array_equal(task.y, expected)
    assert task.mri.rows.patient_id.tolist() == task.ct.rows.patient_id.tolist()
    assert (task.mri.rows.modality == "DWI").all()
    lesion_slices = task.slice_labels != STROKE_TYPES.index("none")
    assert lesion_slices.any() and (task.slice_labels == task.y[:, None])[lesion_slices].all()
    assert (lesion_slices == task.ct.masks.any(axis=(1, 2))).all()
    # the DWI is its own acquisition: its slices are labelled from its own masks
    mri_lesion = task.mri_slice_labels != STROKE_TYPES.index("none")
    assert task.mri_slice_labels.shape == task.slice_labels.shape
    assert (mri_lesion == task.mri.masks.any(axis=(1, 2))).all()
    assert (task.mri_slice_labels == task.y[:, None])[mri_lesion].all()
    assert (mri_lesion != lesion_slices).any()  # another field of view, other slices
    torch.testing.assert_close(task.windows("brain window"), task.ct.x[:, :1])
    assert task.counts("synthetic").loc["patients"].sum() == len(baseline)
