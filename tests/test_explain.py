"""Saliency maps: orientation, localisation scores and the randomisation check."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from stroke_lib.explain import (CAM_METHODS, _localisation_verdict, _randomisation_verdict, _spearman_each, overlay_cases,
                                gradcam, localisation, randomisation_check, randomised_copy, saliency_checks)


def _bright_cube_input() -> tuple[torch.Tensor, np.ndarray]:
    """Two volumes (2, 1, 16, 16, 16) of low noise with a bright 4^3 cube; the cube masks."""
    g = torch.Generator().manual_seed(0)
    x = 0.01 * torch.rand(2, 1, 16, 16, 16, generator=g)
    masks = np.zeros((2, 16, 16, 16), np.float32)
    for i, (a, b, c) in enumerate([(2, 3, 4), (9, 10, 8)]):
        x[i, 0, a:a + 4, b:b + 4, c:c + 4] += 5.0
        masks[i, a:a + 4, b:b + 4, c:c + 4] = 1
    return x, masks


def _evidence_net() -> nn.Module:
    """logit = mean(ReLU(conv(x))), the convolution a smoothed identity: evidence is intensity."""
    conv = nn.Conv3d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(0.02)
        conv.weight[0, 0, 1, 1, 1] = 1.0
    linear = nn.Linear(1, 1)
    with torch.no_grad():
        linear.weight.fill_(1.0)
        linear.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), linear)


@pytest.mark.parametrize("method", sorted(CAM_METHODS))
def test_maps_are_brightest_where_the_evidence_is(method):
    x, masks = _bright_cube_input()
    maps = gradcam(_evidence_net(), x, target_layer="1", method=method)
    assert maps.shape == (2, 16, 16, 16)
    assert maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2, 3)), 1)
    loc = localisation(maps, masks, np.ones_like(masks, bool))
    assert loc["pointing_game"] == 1.0
    assert loc["energy_in_lesion"] > 0.8 > 10 * loc["lesion_share_of_brain"]


def test_uniform_map_scores_the_lesion_share():
    _, masks = _bright_cube_input()
    brains = np.zeros_like(masks, bool)
    brains[:, 1:15, 1:15, 1:15] = True
    loc = localisation(np.ones_like(masks), masks, brains)
    assert loc["energy_in_lesion"] == pytest.approx(64 / 14**3)
    assert loc["lesion_share_of_brain"] == pytest.approx(64 / 14**3)
    assert loc["n"] == 2


def test_unknown_method_raises():
    x, _ = _bright_cube_input()
    with pytest.raises(ValueError, match="unknown method"):
        gradcam(_evidence_net(), x, "1", method="saliency")


def test_randomisation_check_sees_a_changed_model():
    x, _ = _bright_cube_input()
    x = x + 0.5 * torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
    same = randomisation_check(_evidence_net(), x, "1", top_layers=[])
    changed = randomisation_check(_evidence_net(), x, "1", top_layers=["0"], seed=0)
    assert same["spearman_mean"] == pytest.approx(1.0)
    assert changed["spearman_mean"] < 0.9


def test_random_weight_control_keeps_the_architecture_and_leaves_the_model_alone():
    net = _evidence_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    control = randomised_copy(net, None, seed=0)
    after = control.state_dict()
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    assert not torch.equal(after["0.weight"], before["0.weight"])
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())


def test_a_constant_map_correlates_zero_without_a_warning():
    maps = np.random.default_rng(0).random((2, 4, 4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rho = _spearman_each(maps, np.zeros_like(maps))
    assert rho.tolist() == [0.0, 0.0]


def test_saliency_checks_set_the_trained_model_against_its_controls():
    x, masks = _bright_cube_input()
    x = torch.cat([x, x.flip(2)])  # four patients
    masks = np.concatenate([masks, masks[:, ::-1].copy()])
    report = saliency_checks(_evidence_net(), x, masks, np.ones_like(masks, bool), "1",
                             top_layers=["0"], n_boot=200)
    assert set(report.verdicts.index) == set(CAM_METHODS)
    assert set(report.localisation.index) == {(m, n) for m in CAM_METHODS for n in ("trained", "random weights")}
    for method in CAM_METHODS:
        trained = report.localisation.loc[(method, "trained")]
        assert trained["energy in lesion"] > 0.8 and trained["pointing game"] == 1.0
        assert trained["energy lower"] <= trained["energy in lesion"] <= trained["energy upper"]
        assert 0 <= trained["pointing lower"] < 1 == trained["pointing upper"]
        v = report.verdicts.loc[method]
        random = report.localisation.loc[(method, "random weights")]
        assert v["energy in lesion, trained minus random"] == pytest.approx(
            trained["energy in lesion"] - random["energy in lesion"])
        assert v["randomisation check"].split(":")[0] in {"passes", "fails", "inconclusive"}
        assert report.maps[method, "trained"].shape == (4, 16, 16, 16)


def test_verdicts_follow_the_intervals():
    assert _localisation_verdict(0.01, 0.2).startswith("localises better")
    assert _localisation_verdict(-0.1, 0.2).startswith("no better")
    assert _localisation_verdict(-0.3, -0.1).startswith("localises worse")
    assert _randomisation_verdict(0.1, 0.4).startswith("passes")
    assert _randomisation_verdict(0.6, 0.95).startswith("fails")
    assert _randomisation_verdict(0.3, 0.7) == "inconclusive"


def test_without_masks_only_the_randomisation_check_runs():
    x, masks = _bright_cube_input()
    report = saliency_checks(_evidence_net(), x, np.zeros_like(masks), np.ones_like(masks, bool), "1",
                             top_layers=["0"], n_boot=50, localise=False)
    assert report.localisation.empty
    assert list(report.verdicts.columns[-1:]) == ["randomisation check"]
    assert set(report.maps) == {(m, "trained") for m in CAM_METHODS}


def test_overlay_cases_are_the_largest_and_the_median_lesion():
    masks = np.zeros((4, 4, 4, 4))
    for i, n in enumerate([0, 5, 10, 1]):
        masks[i].flat[:n] = 1
    assert overlay_cases(masks) == [("largest lesion", 2), ("median lesion", 1)]
    assert overlay_cases(np.zeros((3, 2, 2, 2))) == [("first patient", 0), ("second patient", 1)]


def test_saliency_views_put_every_verdict_in_a_table_and_in_words():
    from stroke_lib.report import saliency_views

    x, masks = _bright_cube_input()
    report = saliency_checks(_evidence_net(), x, masks, np.ones_like(masks, bool), "1", top_layers=["0"], n_boot=50)
    loc, verdicts, words = saliency_views({"net": report}, "synthetic")
    assert len(loc) == 2 * len(CAM_METHODS) and loc.columns.name == "localisation (synthetic)"
    assert list(verdicts.index) == [("net", m) for m in report.verdicts.index]
    assert words.count("- **net, ") == len(CAM_METHODS) and "randomisation check" in words
    # the network's evidence is the bright cube, so its maps point into the lesion
    assert words.count("falls in the lesion more often than chance") == len(CAM_METHODS)
    bare = saliency_checks(_evidence_net(), x, masks, np.ones_like(masks, bool), "1", top_layers=["0"],
                           n_boot=50, localise=False)
    loc, verdicts, words = saliency_views({"net": bare}, "soop")
    assert loc is None and "localisation verdict" not in verdicts and "energy" not in words
    assert "pointing game" not in words


def test_pointing_game_is_printed_fine_enough_to_compare_with_chance():
    from stroke_lib.report import _pointing

    row = pd.Series({"pointing game": 1 / 27, "pointing lower": 0.0066, "pointing upper": 0.18,
                     "pointing by chance": 0.0069})
    game, chance = _pointing(row)
    assert (game, chance) == ("0.0370 [0.0066, 0.1800]", "0.0069")  # lower bound visibly below chance
    row["pointing lower"] = 0.02
    assert _pointing(row) == ("0.04 [0.02, 0.18]", "0.01")  # well apart: the interval's own precision


def test_localisation_counts_scans_and_patients_apart():
    x, masks = _bright_cube_input()
    x = torch.cat([x, x.flip(2)])  # two scans of each of two patients
    masks = np.concatenate([masks, masks[:, ::-1].copy()])
    report = saliency_checks(_evidence_net(), x, masks, np.ones_like(masks, bool), "1", top_layers=["0"],
                             n_boot=50, groups=np.array([0, 1, 0, 1]))
    trained = report.localisation.loc[(next(iter(CAM_METHODS)), "trained")]
    assert (trained["scans with a lesion"], trained["patients with a lesion"]) == (4, 2)
