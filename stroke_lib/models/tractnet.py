"""TRACT-NET: mixture-of-skip-connection 3D network with a Mamba bottleneck (paper 000).

Oh S., Jeong H., Cho Y., Kim K., Kim C., Jeong D. Y., Kim B. J., "Mixture-of-Skip-Connection
Deep Learning Model to Classify Stroke Severity from Diffusion Weighted Imaging Based on
NIHSS", J Imaging Inform Med 2026, doi 10.1007/s10278-026-01892-5.

Only the abstract is public. It says: a "mixture-residual block" whose skip connection
embeds "a 3D coordinate-attentive module and a 3D efficient self-attentive module",
"capturing axis awareness and long-range dependency"; "in the bottleneck stage, Mamba, a
selective state-space model, was used to refine feature maps"; a binary output (minor vs
non-minor stroke) from DWI. Everything else here is our reading:

Interpretations where the abstract is silent

1. Backbone: a ResNet-like encoder (He et al., CVPR 2016) with a stem and four stages, as
   the network is a classifier; stage 1 keeps the stem's resolution, stages 2-4 halve it
   with a strided 3^3 convolution. Widths and depths are ours (slim and full below).
2. Mixture-residual block: out = ReLU(F(x) + S(x)) with F = conv3^3-BN-ReLU-conv3^3-BN
   (a basic residual block) and S the skip path.
3. "Mixture" = a convex combination of whole skip connections: S(x) = sum_i w_i S_i(x),
   w = softmax(alpha), with one learned logit per component and block (initialised
   equal), not an input-dependent router. Components: identity S_0(x) = x; coordinate
   attention S_1(x) = x * g_X * g_Y * g_Z; efficient self-attention with its own
   residual S_2(x) = x + W_r A(x), as Shen et al. publish it. Identity is always present.
4. 3D coordinate attention (Hou et al., CVPR 2021) extended to three axes: mean-pool
   along each axis pair to get X-, Y- and Z-descriptors, concatenate them, a shared
   1x1x1 transform (C -> max(8, C/8), BN, hard-swish), split, one 1x1x1 convolution per
   axis (-> C) and a sigmoid: three gates that broadcast over the volume.
5. 3D efficient self-attention (Shen et al., WACV 2021): 1x1x1 projections to keys,
   queries and values of C channels each, one head per 16 channels; keys softmax-
   normalised over positions, queries over channels; context = K V^T per head (a C/h x
   C/h matrix), so memory and time are linear in voxels; a 1x1x1 reprojection to C.
6. Both attention modules sit in every block of every stage (the abstract does not say
   which stages have them).
7. Mamba bottleneck: after the last stage, the map (C channels, X*Y*Z voxels) is read as
   a sequence of voxels in C-order; LayerNorm, Mamba (d_state 16, d_conv 4, expand 2),
   residual, reshape back. The scan order is a parameter: "forward" or "bidirectional"
   (a second Mamba with its own parameters on the reversed sequence, the two averaged);
   bidirectional is the default, as in 3D medical Mamba models (SegMamba, nnMamba).
8. Head: global average pooling and one linear logit (minor vs non-minor), no dropout.
9. Normalisation: BatchNorm, as the chapter-01 baselines use; ReLU activations.
10. Input: DWI and ADC as two channels (the abstract names DWI only; one channel works).
11. "TRansformer" in the name is read as the efficient self-attention module: no
    transformer encoder (with its MLP and layer norms) appears anywhere else.
12. Mixture weights are plain parameters trained with the rest (same optimiser, weight
    decay and learning rate); no temperature, no sparsity or balance loss.

Shapes: inputs (B, C_in, X, Y, Z), any sizes (odd ones included) -> logits (B, 1).
Slim (smoke profile, 48^3 input): widths 8-16-32-64, one block per stage; the maps of the
stem and stages 1-4 are 24^3, 24^3, 12^3, 6^3, 3^3, the Mamba sequence 27 voxels. Full (GPU, 128x128x64):
widths 32-64-128-256, two blocks per stage; the Mamba sequence is 8x8x4 = 256 voxels.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stroke_lib.models.mamba import MambaBottleneck, Scan

#: Grad-CAM target layer: stage 3, 6^3 at the smoke input of 48^3 (16x16x8 at 128x128x64).
GRADCAM_LAYER = "stages.2"
#: Top modules that the randomisation check re-initialises.
TOP_LAYERS = ["head", "bottleneck", "stages.3"]


class CoordinateAttention3d(nn.Module):
    """3D coordinate attention (Hou Q. et al., "Coordinate Attention for Efficient Mobile
    Network Design", CVPR 2021, extended to three axes): (B, C, X, Y, Z) -> (B, C, X, Y, Z).

    ``x * g_X * g_Y * g_Z`` with gates in (0, 1) of shapes (B, C, X, 1, 1), (B, C, 1, Y, 1)
    and (B, C, 1, 1, Z) from axis-wise average pooling, a shared 1x1x1 transform and one
    1x1x1 convolution plus sigmoid per axis.
    """

    def __init__(self, channels: int, reduction: int = 8, min_hidden: int = 8) -> None:
        super().__init__()
        hidden = max(min_hidden, channels // reduction)
        self.shared = nn.Sequential(nn.Conv3d(channels, hidden, 1, bias=False),
                                    nn.BatchNorm3d(hidden), nn.Hardswish())
        self.gate_x = nn.Conv3d(hidden, channels, 1)
        self.gate_y = nn.Conv3d(hidden, channels, 1)
        self.gate_z = nn.Conv3d(hidden, channels, 1)

    def gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three gates of x (B, C, X, Y, Z): (B, C, X, 1, 1), (B, C, 1, Y, 1), (B, C, 1, 1, Z)."""
        b, c, nx, ny, nz = x.shape
        pooled = torch.cat([x.mean((3, 4)), x.mean((2, 4)), x.mean((2, 3))], dim=2)  # (B, C, X+Y+Z)
        h = self.shared(pooled[..., None, None])  # (B, hidden, X+Y+Z, 1, 1)
        hx, hy, hz = torch.split(h, [nx, ny, nz], dim=2)
        return (torch.sigmoid(self.gate_x(hx)).view(b, c, nx, 1, 1),
                torch.sigmoid(self.gate_y(hy)).view(b, c, 1, ny, 1),
                torch.sigmoid(self.gate_z(hz)).view(b, c, 1, 1, nz))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) -> (B, C, X, Y, Z)."""
        gx, gy, gz = self.gates(x)
        return x * gx * gy * gz


class EfficientAttention3d(nn.Module):
    """3D efficient self-attention (Shen Z. et al., "Efficient Attention: Attention with
    Linear Complexities", WACV 2021): (B, C, X, Y, Z) -> (B, C, X, Y, Z), ``x + W_r A(x)``.

    Per head, keys are softmax-normalised over the N = X*Y*Z positions and queries over
    channels; A(x) = V-weighted context applied to the queries, ``(K V^T)^T Q``, with a
    (C/h x C/h) context, so no N x N matrix is ever formed: memory is linear in N.
    """

    def __init__(self, channels: int, head_channels: int = 16) -> None:
        super().__init__()
        self.heads = max(1, channels // head_channels)
        if channels % self.heads:
            raise ValueError(f"channels {channels} not divisible into {self.heads} heads")
        self.queries = nn.Conv3d(channels, channels, 1)
        self.keys = nn.Conv3d(channels, channels, 1)
        self.values = nn.Conv3d(channels, channels, 1)
        self.reprojection = nn.Conv3d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) -> (B, C, X, Y, Z)."""
        b, c = x.shape[:2]
        split = (b, self.heads, c // self.heads, -1)  # (B, h, C/h, N)
        q = self.queries(x).reshape(split).softmax(dim=2)
        k = self.keys(x).reshape(split).softmax(dim=3)
        v = self.values(x).reshape(split)
        context = k @ v.transpose(2, 3)  # (B, h, C/h keys, C/h values)
        attended = context.transpose(2, 3) @ q  # (B, h, C/h values, N)
        return x + self.reprojection(attended.reshape(x.shape))


class SkipMixture(nn.Module):
    """Learned convex mixture of skip connections: (B, C, X, Y, Z) -> (B, C, X, Y, Z).

    ``sum_i softmax(logits)_i * S_i(x)`` over identity and, when switched on, 3D coordinate
    attention and 3D efficient self-attention.
    """

    def __init__(self, channels: int, coord_attention: bool = True,
                 efficient_attention: bool = True) -> None:
        super().__init__()
        components: dict[str, nn.Module] = {"identity": nn.Identity()}
        if coord_attention:
            components["coord_attention"] = CoordinateAttention3d(channels)
        if efficient_attention:
            components["efficient_attention"] = EfficientAttention3d(channels)
        self.components = nn.ModuleDict(components)
        self.logits = nn.Parameter(torch.zeros(len(components)))

    @property
    def weights(self) -> torch.Tensor:
        """The mixture weights (n_components,), summing to 1, in ``components`` order."""
        return self.logits.softmax(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) -> (B, C, X, Y, Z)."""
        w = self.weights
        return sum(w[i] * module(x) for i, module in enumerate(self.components.values()))


class MixtureResidualBlock(nn.Module):
    """``ReLU(F(x) + S(x))``: F two 3^3 conv-BN layers, S a ``SkipMixture`` (identity alone:
    a plain residual block). (B, C, X, Y, Z) -> (B, C, X, Y, Z)."""

    def __init__(self, channels: int, coord_attention: bool = True,
                 efficient_attention: bool = True) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv3d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm3d(channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm3d(channels))
        self.skip = (SkipMixture(channels, coord_attention, efficient_attention)
                     if coord_attention or efficient_attention else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) -> (B, C, X, Y, Z)."""
        return F.relu(self.residual(x) + self.skip(x))


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm3d(c_out), nn.ReLU(inplace=True))


class TractNet(nn.Module):
    """TRACT-NET (paper 000, our reading; see the module docstring): inputs (B, C_in, X, Y, Z)
    -> logits (B, 1).

    stem (3^3 conv, stride 2) -> stages (stage 1 at the stem's resolution, each later one
    halves it) of mixture-residual blocks -> Mamba bottleneck -> global average pool ->
    linear logit. Any spatial size works (each halving rounds up).

    Args:
        in_channels: input channels (2 for DWI + ADC).
        widths: channels per stage. blocks: mixture-residual blocks per stage.
        coord_attention, efficient_attention: the skip mixture's components besides
            identity (both off: plain residual blocks).
        mamba: the Mamba bottleneck (off: identity).
        scan: the bottleneck's scan order, "forward" or "bidirectional".
    """

    def __init__(self, in_channels: int = 2, widths: Sequence[int] = (32, 64, 128, 256),
                 blocks: Sequence[int] = (2, 2, 2, 2), coord_attention: bool = True,
                 efficient_attention: bool = True, mamba: bool = True,
                 scan: Scan = "bidirectional") -> None:
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError(f"widths {tuple(widths)} and blocks {tuple(blocks)} differ in length")
        self.stem = _conv_bn_relu(in_channels, widths[0], stride=2)
        stages, c_in = [], widths[0]
        for i, (width, n_blocks) in enumerate(zip(widths, blocks)):
            layers: list[nn.Module] = [] if i == 0 else [_conv_bn_relu(c_in, width, stride=2)]
            layers += [MixtureResidualBlock(width, coord_attention, efficient_attention)
                       for _ in range(n_blocks)]
            stages.append(nn.Sequential(*layers))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.bottleneck = MambaBottleneck(c_in, scan=scan) if mamba else nn.Identity()
        self.head = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(c_in, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, X, Y, Z) -> (B, 1)."""
        return self.head(self.bottleneck(self.stages(self.stem(x))))


#: Stage widths and blocks per stage of the two variants.
VARIANTS = {"slim": {"widths": (8, 16, 32, 64), "blocks": (1, 1, 1, 1)},
            "full": {"widths": (32, 64, 128, 256), "blocks": (2, 2, 2, 2)}}


def tractnet(in_channels: int, slim: bool = False, coord_attention: bool = True,
             efficient_attention: bool = True, mamba: bool = True,
             scan: Scan = "bidirectional") -> TractNet:
    """TRACT-NET, slim (smoke profile: 2 CPU cores, 48^3) or full (GPU, 128x128x64):
    inputs (B, in_channels, X, Y, Z) -> logits (B, 1).

    The ablation switches are ``TractNet``'s: coord_attention, efficient_attention (skip
    mixture components besides identity), mamba (bottleneck on/off), scan order.
    """
    return TractNet(in_channels, **VARIANTS["slim" if slim else "full"],
                    coord_attention=coord_attention, efficient_attention=efficient_attention,
                    mamba=mamba, scan=scan)
