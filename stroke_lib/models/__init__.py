"""Networks used by the chapters, one module per family.

- ``baselines``: MONAI's DenseNet and ResNet10 with one logit (every chapter).
- ``tractnet``: TRACT-NET, mixture-of-skip-connection network with a Mamba bottleneck
  (paper 000, chapter 02).
- ``ctnet``: CTNet, its residual blocks and the Table 3 baselines (paper 001, chapter 03);
  its 2D models take (B, C, X, Y) with the slices as channels.
- ``slices``: a 2D CNN over every slice, then mean, max or attention pooling or a
  bidirectional GRU/LSTM across the slices (chapter 04); inputs (B, C, X, Y, S), K logits.
- ``seresnext``: MONAI's SE-ResNeXt-50 in 2D (and a slim variant with the same stage
  names), frozen by depth ``layer0`` ... ``layer4`` (paper 004, chapter 05).
- ``mamba``: Mamba on any machine (mamba-ssm's CUDA kernels or pure PyTorch, the same
  parameters) and the Mamba bottleneck for 3D maps.

Every 3D classifier takes (B, C, X, Y, Z), every 2D one (B, C, X, Y); all return logits (B, 1),
or (B, K) where a model is built with K classes (``baseline(classes=K)``, the slice models).
"""

from __future__ import annotations

from stroke_lib.models import baselines, ctnet as _ctnet, slices as _slices, tractnet as _tractnet
from stroke_lib.models.baselines import baseline
from stroke_lib.models.ctnet import CTNet, correlation_cnn, ctnet, plain_cnn
from stroke_lib.models.mamba import Mamba, MambaBottleneck, mamba_backends
from stroke_lib.models.seresnext import SEResNeXt, seresnext
from stroke_lib.models.slices import SliceClassifier, slice_classifier
from stroke_lib.models.tractnet import TractNet, tractnet

#: Grad-CAM target layer of each network: the deepest stage whose map still resolves a
#: lesion at the smoke input of 48^3 (see ``baselines.GRADCAM_LAYERS``; TRACT-NET's 6^3).
GRADCAM_LAYERS = {**baselines.GRADCAM_LAYERS, "tractnet": _tractnet.GRADCAM_LAYER,
                  "ctnet": _ctnet.GRADCAM_LAYER, "correlation_cnn": _ctnet.CORRELATION_GRADCAM_LAYER,
                  "slices": _slices.GRADCAM_LAYER}
#: Top modules of each network that the randomisation check re-initialises.
TOP_LAYERS = {**baselines.TOP_LAYERS, "tractnet": _tractnet.TOP_LAYERS, "ctnet": _ctnet.TOP_LAYERS,
              "correlation_cnn": _ctnet.CORRELATION_TOP_LAYERS, "slices": _slices.TOP_LAYERS}

__all__ = ["CTNet", "GRADCAM_LAYERS", "TOP_LAYERS", "Mamba", "MambaBottleneck", "SEResNeXt", "SliceClassifier",
           "TractNet", "baseline", "correlation_cnn", "ctnet", "mamba_backends", "plain_cnn", "seresnext",
           "slice_classifier", "tractnet"]
