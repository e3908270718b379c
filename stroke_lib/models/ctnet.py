"""CTNet (Zhang et al. 2026, paper 001) and the two baselines its Table 3 compares.

CTNet, as the paper's methods describe it: "a CNN layer" that extracts shallow features
and raises their dimension, then two kinds of residual blocks stacked in sequence
(He et al. 2016): **residual block 1** for an input whose dimension equals the output's
(identity shortcut, ``H(x) = x``) and **residual block 2** for an input whose dimension
differs (projection shortcut, a strided 1 x 1 convolution with batch normalisation), then
an "HT predictor" that turns the deep features into the prediction.

Interpretations where the text is silent (its supplementary figures 2 and 3 are not
available):

1. 2D with the 28 slices as channels, not 3D. The paper crops every CT to "a
   standardized frame count dimension of 28", the language of an input's channel axis;
   and a 2D network on 28-channel slices trains in seconds on a CPU, a 3D one in minutes.
   The 3D reading (``spatial_dims=3``, the same blocks with 3D kernels, slices as depth)
   is the chapter's ablation.
2. Input windows: the brain window (centre 40, width 80 HU) and a narrow stroke window
   (centre 40, width 30 HU) as two channels per slice, so 56 input channels in 2D.
3. The CNN layer: 3 x 3 convolution, batch normalisation, ReLU and a 2 x 2 max-pool.
4. The stack: block 1, block 2, block 1, block 2 (each block: two 3 x 3 convolutions with
   batch normalisation; block 2 halves the map and doubles the channels); widths
   (32, 64, 128), slim (16, 32, 64) in the smoke profile.
5. The HT predictor: global average pooling, dropout 0.3, a fully connected layer to
   half the width with ReLU, and one logit.

Baselines of Table 3, as this study rebuilds them:

- ``CorrelationCNN``: the correlation learning mechanism of Wozniak et al. (Neural
  Comput Appl 2021, doi 10.1007/s00521-021-05841-x): a CNN trained together with a
  supporting fully connected network that "helps the CNN to find the most adequate
  filters for pooling and convolution layers". Our reading: the supporting network reads
  the whole input at 8 x 8 and gates the CNN's filters (a sigmoid weight per channel of
  each convolution block) before each pooling; both are trained by the one loss.
- ``plain_cnn``: the same CNN without the supporting network. It stands in for Soundari
  et al. 2022, whose model could not be found: an approximation, labelled as one.

Shapes: 2D models take (B, C, X, Y) (the slices folded into C by ``slices_as_channels``),
3D models (B, C, X, Y, Z); every model returns logits (B, 1).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

#: Grad-CAM target: the second block 1, at a quarter of the input's in-plane size (16 x 16
#: at the smoke input of 64), the deepest map that still resolves an infarct.
GRADCAM_LAYER = "blocks.2"
#: Top modules that the randomisation check re-initialises.
TOP_LAYERS = ["head", "blocks.3"]
#: The correlation-learning CNN's Grad-CAM layer and top modules.
CORRELATION_GRADCAM_LAYER = "features.1"
CORRELATION_TOP_LAYERS = ["head", "features.2"]


def slices_as_channels(x: torch.Tensor) -> torch.Tensor:
    """(B, C, X, Y, Z) -> (B, C * Z, X, Y): each window of each slice one channel, in
    slice order within a window."""
    b, c, nx, ny, nz = x.shape
    return x.permute(0, 1, 4, 2, 3).reshape(b, c * nz, nx, ny)


def _layers(spatial_dims: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module]]:
    if spatial_dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d
    if spatial_dims == 3:
        return nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d
    raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


class ResidualBlock1(nn.Module):
    """Residual block 1: two 3 x 3 convolutions and an identity shortcut, ``relu(F(x) + x)``;
    ``(B, C, *S) -> (B, C, *S)``."""

    def __init__(self, channels: int, spatial_dims: int = 2) -> None:
        super().__init__()
        conv, bn, _ = _layers(spatial_dims)
        self.body = nn.Sequential(conv(channels, channels, 3, padding=1, bias=False), bn(channels),
                                  nn.ReLU(inplace=True), conv(channels, channels, 3, padding=1, bias=False),
                                  bn(channels))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + x)


class ResidualBlock2(nn.Module):
    """Residual block 2: the first convolution strides by 2 and changes the channels, the
    shortcut is a projection (1 x 1 strided convolution and batch norm), ``relu(F(x) + H(x))``;
    ``(B, C_in, *S) -> (B, C_out, *S / 2)``."""

    def __init__(self, c_in: int, c_out: int, spatial_dims: int = 2) -> None:
        super().__init__()
        conv, bn, _ = _layers(spatial_dims)
        self.body = nn.Sequential(conv(c_in, c_out, 3, stride=2, padding=1, bias=False), bn(c_out),
                                  nn.ReLU(inplace=True), conv(c_out, c_out, 3, padding=1, bias=False), bn(c_out))
        self.shortcut = nn.Sequential(conv(c_in, c_out, 1, stride=2, bias=False), bn(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class CTNet(nn.Module):
    """CNN layer -> residual block 1 -> block 2 -> block 1 -> block 2 -> HT predictor.

    Args:
        in_channels: input channels (windows x 28 slices in 2D; windows in 3D).
        widths: channels after the CNN layer and after each block 2.
        spatial_dims: 2 (slices as channels, the chapter's CTNet) or 3 (the ablation).
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = (32, 64, 128), spatial_dims: int = 2) -> None:
        super().__init__()
        conv, bn, pool = _layers(spatial_dims)
        w0, w1, w2 = widths
        self.stem = nn.Sequential(conv(in_channels, w0, 3, padding=1, bias=False), bn(w0), nn.ReLU(inplace=True),
                                  pool(2))
        self.blocks = nn.Sequential(ResidualBlock1(w0, spatial_dims), ResidualBlock2(w0, w1, spatial_dims),
                                    ResidualBlock1(w1, spatial_dims), ResidualBlock2(w1, w2, spatial_dims))
        pooled = nn.AdaptiveAvgPool2d(1) if spatial_dims == 2 else nn.AdaptiveAvgPool3d(1)
        self.head = nn.Sequential(pooled, nn.Flatten(), nn.Dropout(0.3), nn.Linear(w2, w2 // 2),
                                  nn.ReLU(inplace=True), nn.Linear(w2 // 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def ctnet(in_channels: int, slim: bool = False, spatial_dims: int = 2) -> CTNet:
    """CTNet with widths (32, 64, 128), or (16, 32, 64) when ``slim`` (the smoke profile)."""
    return CTNet(in_channels, (16, 32, 64) if slim else (32, 64, 128), spatial_dims)


class CorrelationCNN(nn.Module):
    """A 2D CNN of three convolution blocks (3 x 3 convolution, batch norm, ReLU, 2 x 2
    max-pool) and a fully connected head; with ``support`` a supporting fully connected
    network reads the input at 8 x 8 and gates each block's filters before its pooling.

    Args:
        in_channels: input channels (B, C, X, Y).
        widths: channels of the three blocks.
        support: the correlation learning mechanism (Wozniak et al.); False is the plain CNN.
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = (32, 64, 128), support: bool = True) -> None:
        super().__init__()
        chans = [in_channels, *widths]
        self.features = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True))
            for a, b in zip(chans[:-1], chans[1:]))
        self.pool = nn.MaxPool2d(2)
        self.widths = list(widths)
        self.support = (nn.Sequential(nn.AdaptiveAvgPool2d(8), nn.Flatten(), nn.Linear(in_channels * 64, 64),
                                      nn.ReLU(inplace=True), nn.Linear(64, sum(widths)))
                        if support else None)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(widths[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = torch.sigmoid(self.support(x)).split(self.widths, dim=1) if self.support is not None else None
        h = x
        for k, block in enumerate(self.features):
            h = block(h)
            if gates is not None:
                h = h * 2 * gates[k][:, :, None, None]  # 2 x sigmoid: 1 at a neutral gate
            h = self.pool(h)
        return self.head(h)


def correlation_cnn(in_channels: int, slim: bool = False) -> CorrelationCNN:
    """Wozniak et al.'s correlation learning network as this study reads it (2D)."""
    return CorrelationCNN(in_channels, (16, 32, 64) if slim else (32, 64, 128), support=True)


def plain_cnn(in_channels: int, slim: bool = False) -> CorrelationCNN:
    """The same CNN without the supporting network: the stand-in for Soundari et al. 2022."""
    return CorrelationCNN(in_channels, (16, 32, 64) if slim else (32, 64, 128), support=False)
