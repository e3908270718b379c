"""Saliency maps: orientation, localisation scores and the randomisation check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from stroke_lib.explain import CAM_METHODS, gradcam, localisation, randomisation_check, saliency_checks


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


def test_saliency_checks_report_every_method():
    x, masks = _bright_cube_input()
    maps, table = saliency_checks(_evidence_net(), x, masks, np.ones_like(masks, bool), "1",
                                  top_layers=["0"])
    assert set(maps) == set(CAM_METHODS) == set(table.index)
    assert (table["energy / share"].astype(float) > 10).all()
    assert (table["patients with a lesion"] == 2).all()
