"""Networks: baselines, TRACT-NET and its modules, Mamba (pure-PyTorch backend)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mambapy.mamba import MambaBlock, MambaConfig

from stroke_lib.explain import gradcam, randomisation_check
from stroke_lib.models import (GRADCAM_LAYERS, TOP_LAYERS, Mamba, MambaBottleneck, TractNet, baseline,
                               mamba_backends, tractnet)
from stroke_lib.models.mamba import cuda_kernels_installed
from stroke_lib.models.tractnet import CoordinateAttention3d, EfficientAttention3d, SkipMixture

ABLATIONS = list(itertools.product([False, True], [False, True], [False, True], ["forward", "bidirectional"]))


def _mamba_ssm_parameters(d_model: int, d_state: int, d_conv: int, expand: int) -> dict[str, tuple]:
    """Parameter names and shapes of mamba_ssm.Mamba(d_model, d_state, d_conv, expand) with its
    defaults (bias=False, conv_bias=True, dt_rank="auto"), as mamba-ssm documents them."""
    d_inner, dt_rank = expand * d_model, math.ceil(d_model / 16)
    return {"in_proj.weight": (2 * d_inner, d_model), "conv1d.weight": (d_inner, 1, d_conv),
            "conv1d.bias": (d_inner,), "x_proj.weight": (dt_rank + 2 * d_state, d_inner),
            "dt_proj.weight": (d_inner, dt_rank), "dt_proj.bias": (d_inner,),
            "A_log": (d_inner, d_state), "D": (d_inner,), "out_proj.weight": (d_model, d_inner)}


def _mamba_loop(m: Mamba, x: torch.Tensor) -> torch.Tensor:
    """The Mamba block computed step by step in float64 from its parameters (Gu and Dao 2023,
    Algorithm 2 with a causal depthwise convolution before the scan): (B, L, D) -> (B, L, D)."""
    p = {k: v.double() for k, v in m.named_parameters()}  # differentiable in a float64 model
    x = x.double()
    batch, length, _ = x.shape
    u_raw, z = (x @ p["in_proj.weight"].T).chunk(2, dim=-1)  # (B, L, E)
    w, k = p["conv1d.weight"][:, 0], m.d_conv  # causal depthwise convolution, tap by tap
    conv = torch.stack([p["conv1d.bias"] + sum(w[:, j] * u_raw[:, t - k + 1 + j]
                                               for j in range(k) if t - k + 1 + j >= 0)
                        for t in range(length)], dim=1)
    u = F.silu(conv)
    dt, b, c = torch.split(u @ p["x_proj.weight"].T, [m.dt_rank, m.d_state, m.d_state], dim=-1)
    delta = F.softplus(dt @ p["dt_proj.weight"].T + p["dt_proj.bias"])  # (B, L, E)
    a = -torch.exp(p["A_log"])  # (E, N)
    h = torch.zeros(batch, m.d_inner, m.d_state, dtype=torch.float64)
    ys = []
    for t in range(length):
        dt_t = delta[:, t, :, None]  # (B, E, 1)
        h = torch.exp(dt_t * a) * h + dt_t * b[:, t, None, :] * u[:, t, :, None]
        ys.append((h * c[:, t, None, :]).sum(-1) + p["D"] * u[:, t])
    y = torch.stack(ys, dim=1) * F.silu(z)
    return y @ p["out_proj.weight"].T


# --- baselines (the contract chapter 01 uses) ---------------------------------------------

@pytest.mark.parametrize("name", ["densenet", "resnet10"])
def test_slim_baselines_give_one_logit_and_have_their_cam_layers(name):
    model = baseline(name, in_channels=2, slim=True)
    assert model(torch.randn(2, 2, 32, 32, 32)).shape == (2, 1)
    modules = dict(model.named_modules())
    assert GRADCAM_LAYERS[name] in modules and all(t in modules for t in TOP_LAYERS[name])


def test_unknown_baseline_names_only_the_baselines():
    with pytest.raises(ValueError, match=r"\['densenet', 'resnet10'\]"):
        baseline("tractnet", in_channels=2)


# --- Mamba -------------------------------------------------------------------------------

@pytest.mark.parametrize("d_model,d_state,d_conv,expand", [(16, 16, 4, 2), (40, 8, 3, 3)])
def test_mamba_parameters_are_mamba_ssms(d_model, d_state, d_conv, expand):
    m = Mamba(d_model, d_state=d_state, d_conv=d_conv, expand=expand)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == _mamba_ssm_parameters(d_model, d_state, d_conv, expand)


def test_mamba_state_dict_round_trips_strictly():
    """Into a fresh block and into mambapy's own block (another implementation of the same
    parameterisation): same outputs."""
    torch.manual_seed(0)
    m = Mamba(16, d_state=8)
    x = torch.randn(2, 9, 16)
    other = Mamba(16, d_state=8)
    other.load_state_dict(m.state_dict(), strict=True)
    reference = MambaBlock(MambaConfig(d_model=16, n_layers=1, d_state=8))
    reference.load_state_dict(m.state_dict(), strict=True)
    m.load_state_dict(reference.state_dict(), strict=True)
    torch.testing.assert_close(other(x), m(x))
    torch.testing.assert_close(reference(x), m(x))
    assert mamba_backends(m) == ["mambapy"]


@pytest.mark.skipif(not (torch.cuda.is_available() and cuda_kernels_installed()),
                    reason="needs CUDA and mamba-ssm (the [gpu] extra)")
def test_mamba_cuda_kernels_agree_with_the_pure_path():  # pragma: no cover - GPU only
    from mamba_ssm import Mamba as CudaMamba

    torch.manual_seed(0)
    m = Mamba(32).cuda()
    cuda = CudaMamba(32).cuda()
    cuda.load_state_dict(m.state_dict(), strict=True)
    x = torch.randn(2, 50, 32, device="cuda")
    y = m(x)
    assert m.backend == "mamba-ssm"
    torch.testing.assert_close(y, cuda(x))
    torch.testing.assert_close(y.cpu(), m.cpu()(x.cpu()), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("length", [1, 2, 5, 7, 13, 16])
def test_parallel_scan_equals_the_step_by_step_recurrence(length):
    """float64: equal to 1e-10; float32 against the float64 loop: to 1e-5 (relative to the
    output's scale, about 0.1)."""
    torch.manual_seed(length)
    m = Mamba(16, d_state=8, d_conv=4)
    with torch.no_grad():  # a faster, less uniform A than the S4D initialisation
        m.A_log.copy_(torch.randn_like(m.A_log) * 0.5)
    x = torch.randn(2, length, 16)
    expected = _mamba_loop(m, x)
    with torch.no_grad():
        y32 = m(x)
        y64 = m.double()(x.double())
    torch.testing.assert_close(y64, expected, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(y32.double(), expected, atol=1e-5, rtol=1e-5)


def test_parallel_scan_gradients_equal_the_recurrences():
    """The parallel scan's own backward (mambapy) against autograd through the loop, float64."""
    torch.manual_seed(1)
    m = Mamba(8, d_state=4).double()
    x = torch.randn(2, 11, 8, dtype=torch.float64)
    params = dict(m.named_parameters())
    scan = torch.autograd.grad(m(x).pow(2).sum(), list(params.values()))
    loop = torch.autograd.grad(_mamba_loop(m, x).pow(2).sum(), list(params.values()))
    for name, a, b in zip(params, scan, loop):
        assert b.abs().max() > 0, name
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7, msg=name)


# --- Mamba bottleneck ---------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 16, 3, 3, 3), (1, 16, 5, 2, 3)])
def test_bottleneck_keeps_the_map_shape(shape):
    assert MambaBottleneck(16)(torch.randn(shape)).shape == shape


def test_forward_scan_is_causal_and_bidirectional_sees_both_ways():
    """A map (1, C, 1, 1, L) is a sequence along Z. Changing the last voxel of an asymmetric
    sequence leaves the forward scan's earlier outputs alone, not the bidirectional's."""
    torch.manual_seed(0)
    x = torch.randn(1, 16, 1, 1, 9) + torch.linspace(-2, 2, 9)  # asymmetric along the sequence
    changed = x.clone()
    changed[..., -1] += 3.0 * torch.randn(1, 16, 1, 1)  # not a constant: LayerNorm removes those
    for scan, first_moves in [("forward", False), ("bidirectional", True)]:
        torch.manual_seed(1)
        block = MambaBottleneck(16, scan=scan)
        with torch.no_grad():
            shift = (block(changed) - block(x))[..., :-1].abs().max().item()
        assert (shift > 1e-4) is first_moves, (scan, shift)


def test_bidirectional_scan_differs_from_forward_with_the_same_forward_weights():
    torch.manual_seed(0)
    forward = MambaBottleneck(16, scan="forward")
    both = MambaBottleneck(16, scan="bidirectional")
    both.load_state_dict(forward.state_dict(), strict=False)
    x = torch.randn(1, 16, 2, 2, 3) + torch.arange(12.0).reshape(1, 1, 2, 2, 3)
    with torch.no_grad():
        assert (both(x) - forward(x)).abs().max() > 1e-3


def test_unknown_scan_raises():
    with pytest.raises(ValueError, match="unknown scan"):
        MambaBottleneck(8, scan="zigzag")


# --- TRACT-NET modules --------------------------------------------------------------------

def test_coordinate_attention_gates_are_in_unit_interval_and_follow_each_axis():
    torch.manual_seed(0)
    ca = CoordinateAttention3d(16).eval()
    x = torch.randn(2, 16, 7, 6, 5)
    gx, gy, gz = ca.gates(x)
    assert (gx.shape, gy.shape, gz.shape) == ((2, 16, 7, 1, 1), (2, 16, 1, 6, 1), (2, 16, 1, 1, 5))
    for g, axis in [(gx, 2), (gy, 3), (gz, 4)]:
        assert 0 < g.min() and g.max() < 1
        assert g.std(dim=axis).min() > 1e-4  # every channel's gate varies along its axis
    # Flipping the input along one axis flips that axis's gate and leaves the others.
    for axis in (2, 3, 4):
        flipped = ca.gates(x.flip(axis))
        for i, (g, h) in enumerate(zip((gx, gy, gz), flipped)):
            torch.testing.assert_close(h, g.flip(axis) if i == axis - 2 else g)
    torch.testing.assert_close(ca(x), x * gx * gy * gz)


def _saved_numels(module: torch.nn.Module, x: torch.Tensor) -> list[int]:
    """Element counts of every tensor autograd saves for the backward pass of ``module(x)``."""
    sizes: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x.requires_grad_()).sum().backward()
    return sizes


def test_efficient_attention_memory_is_linear_in_voxels():
    """8x the voxels: 8x the memory kept for backward (dot-product attention would keep 64x),
    and no tensor near N^2 elements."""
    torch.manual_seed(0)
    ea = EfficientAttention3d(16)
    small = _saved_numels(ea, torch.randn(1, 16, 8, 8, 8))
    large = _saved_numels(ea, torch.randn(1, 16, 16, 16, 16))
    assert sum(large) / sum(small) == pytest.approx(8, rel=0.05)
    assert max(large) / max(small) == pytest.approx(8, rel=0.05)
    assert max(large) < (16**3) ** 2 / 100


def test_efficient_attention_reaches_across_the_volume():
    """Unlike a 3^3 convolution, one voxel changes the output at the far corner."""
    torch.manual_seed(0)
    ea = EfficientAttention3d(16)
    x = torch.randn(1, 16, 8, 8, 8)
    changed = x.clone()
    changed[0, :, 0, 0, 0] += 5.0
    with torch.no_grad():
        assert (ea(changed) - ea(x))[0, :, -1, -1, -1].abs().max() > 1e-4


def test_skip_mixture_weights_sum_to_one_and_learn():
    torch.manual_seed(0)
    mix = SkipMixture(16)
    assert list(mix.components) == ["identity", "coord_attention", "efficient_attention"]
    torch.testing.assert_close(mix.weights.sum(), torch.tensor(1.0))
    before = mix.weights.detach().clone()
    x = torch.randn(2, 16, 4, 5, 6)
    (mix(x) - 2 * x).pow(2).mean().backward()
    assert mix.logits.grad is not None and mix.logits.grad.abs().min() > 0
    torch.optim.SGD([mix.logits], lr=1.0).step()
    assert not torch.allclose(mix.weights, before)
    torch.testing.assert_close(mix.weights.sum(), torch.tensor(1.0))


# --- TRACT-NET ----------------------------------------------------------------------------

@pytest.mark.parametrize("coord,efficient,mamba,scan", ABLATIONS)
def test_tractnet_ablations_give_one_logit_for_odd_sizes(coord, efficient, mamba, scan):
    model = tractnet(1, slim=True, coord_attention=coord, efficient_attention=efficient,
                     mamba=mamba, scan=scan)
    assert model(torch.randn(2, 1, 21, 18, 13)).shape == (2, 1)


@pytest.mark.parametrize("in_channels", [1, 2])
def test_full_tractnet_gives_one_logit(in_channels):
    model = tractnet(in_channels)
    assert model(torch.randn(1, in_channels, 33, 32, 17)).shape == (1, 1)
    assert [len(s) for s in model.stages] == [2, 3, 3, 3]  # blocks, plus the downsampling conv


def test_each_ablation_switch_changes_the_network():
    def names(**switches) -> frozenset[str]:
        return frozenset(tractnet(2, slim=True, **switches).state_dict())

    variants = {switches: names(coord_attention=switches[0], efficient_attention=switches[1],
                                mamba=switches[2], scan=switches[3]) for switches in ABLATIONS}
    with_mamba = {k: v for k, v in variants.items() if k[2]}
    assert len(set(with_mamba.values())) == len(with_mamba)  # all 8 with Mamba differ
    without = {k[:2]: v for k, v in variants.items() if not k[2]}
    assert len(set(without.values())) == 4  # the scan order is moot without Mamba
    plain = names(coord_attention=False, efficient_attention=False, mamba=False)
    assert not any("skip" in n or "bottleneck" in n for n in plain)


def test_slim_tractnet_overfits_a_separable_toy_set():
    """Eight 24^3 volumes, a bright 4^3 cube in the left or the right half: the training loss
    falls to under a third of its start in 10 Adam steps."""
    torch.manual_seed(0)
    x = 0.1 * torch.randn(8, 2, 24, 24, 24)
    y = torch.tensor([0.0, 1.0] * 4)
    for i in range(8):
        z0 = 4 + 2 * i
        x0 = 3 if y[i] == 0 else 16
        x[i, :, x0:x0 + 4, 10:14, z0:z0 + 4] += 2.0
    model = tractnet(2, slim=True)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(x).reshape(-1), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < losses[0] / 3, losses


# An untrained network re-initialised at the top can give a flat (all-zero) map.
def test_gradcam_on_tractnet_resolves_6_cubed_and_returns_input_sized_maps():
    torch.manual_seed(0)
    model = tractnet(2, slim=True).eval()
    layer = dict(model.named_modules())[GRADCAM_LAYERS["tractnet"]]
    shapes = []
    hook = layer.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[2:])))
    x = torch.randn(2, 2, 48, 48, 48)
    model(x)
    hook.remove()
    assert shapes == [(6, 6, 6)]
    maps = gradcam(model, x, GRADCAM_LAYERS["tractnet"])
    assert maps.shape == (2, 48, 48, 48) and np.isfinite(maps).all() and maps.max() == pytest.approx(1)
    check = randomisation_check(model, x, GRADCAM_LAYERS["tractnet"], TOP_LAYERS["tractnet"])
    assert check["n"] == 2 and -1 <= check["spearman_mean"] <= 1


def test_tractnet_mismatched_widths_and_blocks_raise():
    with pytest.raises(ValueError, match="differ in length"):
        TractNet(2, widths=(8, 16), blocks=(1,))
