"""The baselines of every chapter: MONAI's DenseNet and ResNet10 with one logit output.

Both take volumes (B, C, X, Y, Z) (or slices (B, C, X, Y) with ``spatial_dims=2``) and
return logits (B, 1), or (B, K) with ``classes=K``.

- DenseNet121: Huang G. et al., "Densely Connected Convolutional Networks", CVPR 2017.
- ResNet10: He K. et al., "Deep Residual Learning for Image Recognition", CVPR 2016, in
  the 3D form of Chen S. et al., "Med3D: Transfer Learning for 3D Medical Image
  Analysis", arXiv:1904.00625 (MONAI's ``resnet10``).
"""

from __future__ import annotations

from monai.networks.nets import DenseNet, DenseNet121, resnet10
from torch import nn

#: Grad-CAM target layer of each baseline: the deepest stage whose map still resolves a
#: lesion (at the smoke input of 48^3: 12^3 for the DenseNet, 6^3 for the slim ResNet10;
#: the last stages are 1^3 to 3^3).
GRADCAM_LAYERS = {"densenet": "features.denseblock1", "resnet10": "layer3"}
#: Top modules that the randomisation check re-initialises.
TOP_LAYERS = {"densenet": ["class_layers", "features.denseblock4"], "resnet10": ["fc", "layer4"]}


def baseline(name: str, in_channels: int, slim: bool = False, spatial_dims: int = 3, classes: int = 1) -> nn.Module:
    """A MONAI baseline classifier: inputs (B, C, X, Y, Z) -> logits (B, ``classes``).

    Args:
        name: ``"densenet"`` (DenseNet121; slim: DenseNet with blocks 2-2-2-2, growth 8)
            or ``"resnet10"`` (MONAI resnet10; slim: a quarter of the channels and a 3^3
            stem without max-pooling, since on a CPU the 7^3 stem costs more than the rest
            of the network).
        in_channels: input channels (2 for DWI + ADC).
        slim: the small variants the smoke profile trains on 2 CPU cores.
        spatial_dims: 3 for volumes (B, C, X, Y, Z), 2 for slices (B, C, X, Y).
        classes: logits out (1: a binary model, as every binary chapter).
    """
    if name == "densenet":
        if slim:
            return DenseNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=classes,
                            init_features=8, growth_rate=8, block_config=(2, 2, 2, 2))
        return DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=classes)
    if name == "resnet10":
        if slim:
            return resnet10(spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=classes,
                            widen_factor=0.25, conv1_t_size=3, conv1_t_stride=2,
                            no_max_pool=True)
        return resnet10(spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=classes)
    raise ValueError(f"unknown baseline {name!r}; choose from {sorted(GRADCAM_LAYERS)}")
