"""SE-ResNeXt of Jung and Whangbo (paper 004, chapter 05), frozen by depth.

MONAI's ``SEResNext50`` (2D): stages ``layer0`` (7x7 convolution, stride 2, and 3x3 max
pooling, stride 2) and ``layer1`` ... ``layer4`` (SE-ResNeXt bottlenecks; layer2-4 halve
the map), then global average pooling and ``last_linear``. Input (B, C, X, Y), C the
target slice and its neighbours (lesion concatenation); output logits (B, classes).

The slim variant for the smoke profile keeps the class, the stage names and so the
checkpoint keys: one bottleneck per stage, 8 groups, every stage's width a quarter of
SE-ResNeXt-50's (stage outputs 64, 128, 256, 512 channels instead of 256 ... 2048).

Freezing depth ``k`` (``freeze(k)``, the paper's "Freeze Layer #0~k") fixes every
parameter of ``layer0`` ... ``layer{k}`` and keeps their BatchNorm statistics (those
stages stay in eval mode while the rest trains); ``k = -1`` freezes nothing. Layers 0-4
hold every convolution and pooling layer of this network, so the paper's "Freeze All
Conv-Pooling Layer" is depth 4 here: only ``last_linear`` trains.
"""

from __future__ import annotations

from monai.networks.nets import SEResNext50
from torch import nn

#: The stages frozen by depth, input first.
STAGES = ("layer0", "layer1", "layer2", "layer3", "layer4")
#: Freezing depths of Table 4 (-1: not frozen), with the paper's names.
FREEZE_DEPTHS = {-1: "not frozen", 0: "#0", 1: "#0-1", 2: "#0-2", 3: "#0-3", 4: "#0-4 (all conv-pooling)"}
#: Grad-CAM target: the last stage.
GRADCAM_LAYER = "layer4"
#: Modules the randomisation check re-initialises.
TOP_LAYERS = ["layer4", "last_linear"]


class SEResNeXt(SEResNext50):
    """MONAI's SE-ResNeXt-50 with stage widths divided by ``width_divisor`` and freezing by depth.

    Args:
        in_channels: input channels (slices of the lesion concatenation).
        classes: logits out (1: binary).
        layers, groups, inplanes: as ``SEResNext50`` (bottlenecks per stage, cardinality,
            channels out of ``layer0``).
        width_divisor: divides every stage's ``planes`` (1: SE-ResNeXt-50 itself).
    """

    def __init__(self, in_channels: int, classes: int = 1, layers: tuple[int, ...] = (3, 4, 6, 3),
                 groups: int = 32, inplanes: int = 64, width_divisor: int = 1, reduction: int = 16) -> None:
        self.width_divisor = width_divisor  # read by _make_layer during SENet.__init__
        super().__init__(layers=layers, groups=groups, inplanes=inplanes, reduction=reduction,
                         spatial_dims=2, in_channels=in_channels, num_classes=classes)
        self.last_linear = nn.Linear(self.inplanes, classes)  # the last stage's width
        nn.init.constant_(self.last_linear.bias, 0)
        self.frozen = -1

    def _make_layer(self, block, planes: int, *args, **kwargs) -> nn.Sequential:
        return super()._make_layer(block, planes // self.width_divisor, *args, **kwargs)

    def freeze(self, depth: int) -> "SEResNeXt":
        """Freeze ``layer0`` ... ``layer{depth}`` (weights and BatchNorm statistics);
        -1 unfreezes every stage. Returns the model."""
        if depth not in FREEZE_DEPTHS:
            raise ValueError(f"freezing depth must be one of {sorted(FREEZE_DEPTHS)}, got {depth}")
        self.frozen = depth
        for k, name in enumerate(STAGES):
            for p in getattr(self, name).parameters():
                p.requires_grad_(k > depth)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "SEResNeXt":
        super().train(mode)
        for name in STAGES[: self.frozen + 1]:
            getattr(self, name).eval()
        return self


def seresnext(in_channels: int, slim: bool = False, classes: int = 1) -> SEResNeXt:
    """SE-ResNeXt-50 (``slim``: one bottleneck per stage, 8 groups, a quarter of the width)."""
    if slim:
        return SEResNeXt(in_channels, classes, layers=(1, 1, 1, 1), groups=8, inplanes=32, width_divisor=4,
                         reduction=8)
    return SEResNeXt(in_channels, classes)
