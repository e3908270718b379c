"""Chapter 05's parts: SE-ResNeXt frozen by depth, region crops with lesion concatenation,
training subsets, f(theta) and the ASPECTS-like score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from stroke_lib.adaptive_transfer import adaptive_choice, aspects, f_theta, training_subset, transferred
from stroke_lib.models.seresnext import FREEZE_DEPTHS, STAGES, seresnext
from stroke_lib.regions import AIR_HU, HAEMORRHAGE, OLD, _square_box, scan_crops


def _one_step(model: torch.nn.Module) -> None:
    torch.manual_seed(1)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0.0, 1.0] * 4)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).reshape(-1), y)
    loss.backward()
    opt.step()


@pytest.mark.parametrize("depth", sorted(FREEZE_DEPTHS))
def test_freezing_depth_leaves_exactly_stages_0_to_k_unchanged(depth):
    torch.manual_seed(0)
    model = seresnext(3, slim=True).freeze(depth)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _one_step(model)
    after = model.state_dict()
    for name, value in before.items():
        stage = name.split(".")[0]
        frozen = stage in STAGES[: depth + 1]
        if value.dtype.is_floating_point and "num_batches" not in name:
            changed = not torch.equal(value, after[name])
            # frozen: weights and BatchNorm statistics unchanged; the rest trains
            if frozen:
                assert not changed, f"{name} changed at depth {depth}"
            elif name.endswith("weight") and "bn" not in name and "running" not in name:
                assert changed, f"{name} did not train at depth {depth}"
    assert all(p.requires_grad == (p_name.split(".")[0] not in STAGES[: depth + 1])
               for p_name, p in model.named_parameters())


def test_freeze_refuses_an_unknown_depth_and_full_model_is_monai_seresnext50():
    with pytest.raises(ValueError, match="freezing depth"):
        seresnext(3, slim=True).freeze(5)
    from monai.networks.nets import SEResNext50
    ours, monai = seresnext(3), SEResNext50(spatial_dims=2, in_channels=3, num_classes=1)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in monai.state_dict().items()}


def test_transferred_loads_the_source_body_and_a_fresh_head():
    torch.manual_seed(0)
    source = seresnext(3, slim=True)
    make = transferred(lambda: seresnext(3, slim=True), source.state_dict(), depth=0)
    torch.manual_seed(5)
    target = make()
    assert torch.equal(target.layer2[0].conv1.conv.weight, source.layer2[0].conv1.conv.weight)
    assert not torch.equal(target.last_linear.weight, source.last_linear.weight)
    assert target.frozen == 0 and not target.layer0.conv1.weight.requires_grad
    with pytest.raises(ValueError, match="do not fit"):
        transferred(lambda: seresnext(1, slim=True), {"nonsense.weight": torch.zeros(1)}, 0)()


def _scan(z: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A CT whose slice k holds the value 10 k, one region (label 1) on slices 0-2, largest
    on slice 0 (the bottom edge), a second region (label 2) largest on slice 5, a bleed in it."""
    hu = np.broadcast_to(10.0 * np.arange(z), (40, 40, z)).copy()
    regions = np.zeros(hu.shape, int)
    regions[5:15, 8:14, 0] = 1
    regions[6:12, 9:12, 1:3] = 1
    regions[22:30, 20:34, 5] = 2
    regions[24:28, 22:30, 4] = 2
    lesion = np.zeros(hu.shape, int)
    lesion[25:27, 25:27, 5] = HAEMORRHAGE
    lesion[6:8, 9:11, 1] = OLD
    return hu, regions, lesion


def test_lesion_concatenation_puts_neighbours_in_order_and_repeats_the_edge_slice():
    hu, regions, lesion = _scan()
    crops, _, _, info = scan_crops(hu, regions, lesion, ["L_C", "L_M2"], size=16, half=2)
    assert [d["slice"] for d in info] == [0, 5]
    # region 1 is largest on slice 0: channels are slices -2, -1 (repeats of 0), 0, 1, 2
    assert [float(np.median(c)) for c in crops[0]] == [0.0, 0.0, 0.0, 10.0, 20.0]
    assert [float(np.median(c)) for c in crops[1]] == [30.0, 40.0, 50.0, 60.0, 70.0]


def test_region_crops_contain_their_region_and_name_its_lesions():
    hu, regions, lesion = _scan()
    crops, masks, lesions, info = scan_crops(hu, regions, lesion, ["L_C", "L_M2"], size=16, half=1)
    for i, d in enumerate(info):
        x0, x1, y0, y1 = d["box"]
        on_slice = regions[:, :, d["slice"]] == i + 1
        xs, ys = np.nonzero(on_slice)
        assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
        assert x1 - x0 == y1 - y0  # square
        m = masks[i]
        assert m.any() and not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
    assert info[1]["haemorrhage"] and not info[0]["haemorrhage"]
    assert (lesions[1] == HAEMORRHAGE).any() and not (lesions[0] == HAEMORRHAGE).any()
    assert info[0]["old_share"] == pytest.approx(4 / regions[regions == 1].size)
    assert info[1]["haemorrhage_share"] == pytest.approx(4 / (regions == 2).sum())


def test_a_box_past_the_image_is_filled_with_air():
    hu = np.zeros((20, 20, 3))
    regions = np.zeros(hu.shape, int)
    regions[0:4, 0:4, 1] = 1
    crops, _, _, _ = scan_crops(hu, regions, np.zeros_like(regions), ["L_C"], size=8, half=0)
    assert crops.min() == AIR_HU and crops.max() == 0.0
    assert _square_box(regions[:, :, 1] == 1, 0.0)[0] < 0


def test_grids_that_differ_are_refused():
    hu, regions, lesion = _scan()
    with pytest.raises(ValueError, match="differ in shape"):
        scan_crops(hu, regions[:, :, :-1], lesion, ["L_C", "L_M2"])


def test_training_subset_keeps_every_positive_and_k_negatives_per_scan():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 1, 0])
    scans = np.array(["a"] * 5 + ["b"] * 4)
    keep = training_subset(y, scans, 2, seed=3)
    assert keep[y == 1].all()
    assert keep[(scans == "a") & (y == 0)].sum() == 2 and keep[(scans == "b") & (y == 0)].sum() == 2
    assert training_subset(y, scans, 0).all()


def test_f_theta_is_equation_2_and_its_argmin_picks_the_depth():
    assert f_theta([0.8, 0.6, 0.4], w1=0.5, w2=0.5) == pytest.approx(0.5 * 0.8 + 0.5 * 0.6)
    assert f_theta([0.8, 0.6, 0.4], w1=1.0, w2=0.0, epochs=2) == pytest.approx(0.8)
    depth, f = adaptive_choice({-1: [0.7, 0.5], 0: [0.6, 0.5], 4: [0.69, 0.69]})
    assert depth == 0 and f[0] == pytest.approx(0.5 * 0.6 + 0.5 * 0.55)
    with pytest.raises(ValueError):
        f_theta([])


def test_aspects_counts_the_more_affected_side():
    rows = pd.DataFrame({"scan_id": ["s1"] * 4 + ["s2"] * 2, "side": ["L", "L", "R", "R", "L", "R"]})
    score = aspects(rows, np.array([True, True, True, False, False, False]))
    assert score.to_dict() == {"s1": 8, "s2": 10}
