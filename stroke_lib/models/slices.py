"""Slice models of chapter 04: a 2D CNN applied to every axial slice, then the slices
aggregated by pooling or by a recurrent network, as the winning RSNA 2019 haemorrhage
solutions did (per-slice embeddings, neighbouring slices as context, a sequence model
over the scan).

Inputs are scans (B, C, X, Y, S): S axial slices, the last axis. ``lengths`` (B,) gives
the number of real slices of each scan; slices from ``lengths[b]`` on are padding, must be
0, and change nothing: pooling and the recurrent network skip them (the GRU/LSTM through
``pack_padded_sequence``), so a scan gives the same output alone or padded in a batch.
Without ``lengths`` every slice is real. Outputs are logits (B, K).

- ``SliceEncoder``: MONAI ``ResidualUnit`` stages (2D, stride 2 each) over every slice,
  with ``context`` neighbouring slices on each side as extra channels; its output is the
  feature maps stacked back along the slices, (B, D, h, w, S), so Grad-CAM at
  ``encoder.restack`` gives one map per slice on the scan's grid.
- ``SliceClassifier``: the encoder, global max (or average) pooling of each slice's map
  to an embedding (B, S, D), then ``aggregation``: ``mean`` or ``max`` over slices, ``attention``
  (a learned score per slice, softmax over the scan's slices; Ilse et al. 2018's attention
  pooling), or ``gru`` / ``lstm`` (bidirectional, the two directions' last states
  concatenated), and a linear head. ``centre`` reads the middle slice alone: a task
  labelled per slice, each sample a slice with its neighbours (the transfer source task).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from monai.networks.blocks import ResidualUnit
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

Aggregation = Literal["mean", "max", "attention", "gru", "lstm", "centre"]
AGGREGATIONS: tuple[str, ...] = ("mean", "max", "attention", "gru", "lstm", "centre")
#: Grad-CAM target of the slice models: the encoder's output, one map per slice.
GRADCAM_LAYER = "encoder.restack"
#: Modules the randomisation check re-initialises: the last encoder stage and the head.
TOP_LAYERS = ["encoder.stages.2", "aggregate", "head"]


class Restack(nn.Module):
    """Per-slice maps (B * S, D, h, w) back into scans (B, D, h, w, S)."""

    def __init__(self) -> None:
        super().__init__()
        self.slices = 1  # set by the encoder before each call

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        b = maps.shape[0] // self.slices
        return maps.reshape(b, self.slices, *maps.shape[1:]).permute(0, 2, 3, 4, 1).contiguous()


def valid_slices(lengths: torch.Tensor | None, batch: int, slices: int, device: torch.device) -> torch.Tensor:
    """Boolean mask (B, S): True for the real slices of each scan."""
    if lengths is None:
        return torch.ones(batch, slices, dtype=torch.bool, device=device)
    lengths = torch.as_tensor(lengths, device=device)
    return torch.arange(slices, device=device)[None] < lengths[:, None]


class SliceEncoder(nn.Module):
    """2D residual CNN over every slice: (B, C, X, Y, S) -> feature maps (B, D, X/8, Y/8, S).

    Args:
        in_channels: channels of a slice (windows, or DWI and ADC).
        widths: channels of the three stride-2 stages; D is the last.
        context: neighbouring slices on each side stacked as channels (0: the slice alone);
            beyond the scan's ends they are 0.
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = (32, 64, 128), context: int = 0) -> None:
        super().__init__()
        self.context = context
        chans = [in_channels * (2 * context + 1), *widths]
        self.stages = nn.Sequential(*[ResidualUnit(spatial_dims=2, in_channels=a, out_channels=b, strides=2,
                                                   subunits=2, norm="batch")
                                      for a, b in zip(chans[:-1], chans[1:])])
        self.out_channels = widths[-1]
        self.restack = Restack()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, nx, ny, s = x.shape
        if self.context:
            k = self.context
            padded = nn.functional.pad(x, (k, k))
            x = torch.cat([padded[..., i : i + s] for i in range(2 * k + 1)], dim=1)
        flat = x.permute(0, 4, 1, 2, 3).reshape(b * s, x.shape[1], nx, ny)
        self.restack.slices = s
        return self.restack(self.stages(flat))


class SliceClassifier(nn.Module):
    """Slice encoder, per-slice embeddings, aggregation over slices, linear head: (B, C, X, Y, S) -> (B, K).

    Args:
        in_channels: channels per slice. classes: logits out (1 for a binary model).
        aggregation: ``mean``, ``max``, ``attention``, ``gru`` or ``lstm`` (see the module).
        widths, context: the encoder's (``SliceEncoder``).
        hidden: width of the attention scorer, or of each direction of the GRU/LSTM.
        plane_pool: how a slice's map becomes its embedding: ``max`` (the strongest
            response anywhere on the slice: a lesion of 1-2 % of the slice is not averaged
            away) or ``mean`` (global average pooling).
    """

    def __init__(self, in_channels: int, classes: int, aggregation: Aggregation = "gru",
                 widths: Sequence[int] = (32, 64, 128), context: int = 0, hidden: int = 64,
                 plane_pool: Literal["max", "mean"] = "max") -> None:
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        self.aggregation = aggregation
        self.encoder = SliceEncoder(in_channels, widths, context)
        pools = {"max": nn.AdaptiveMaxPool3d, "mean": nn.AdaptiveAvgPool3d}
        self.pool = pools[plane_pool]((1, 1, None))  # each slice's map to one vector
        d = self.encoder.out_channels
        if aggregation == "attention":
            self.aggregate = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, 1))
            out = d
        elif aggregation in ("gru", "lstm"):
            rnn = nn.GRU if aggregation == "gru" else nn.LSTM
            self.aggregate = rnn(d, hidden, batch_first=True, bidirectional=True)
            out = 2 * hidden
        else:
            self.aggregate = nn.Identity()
            out = d
        self.head = nn.Linear(out, classes)
        self.encoder_frozen = False

    def freeze_encoder(self) -> "SliceClassifier":
        """Fine-tune the rest only: the encoder's parameters stop training and its
        BatchNorm layers stay in eval mode (their statistics fixed), whatever ``train()``
        is called with. Returns the model."""
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder_frozen = True
        return self.train(self.training)

    def train(self, mode: bool = True) -> "SliceClassifier":
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Per-slice embeddings (B, S, D): each slice's feature map pooled over the plane."""
        return self.pool(self.encoder(x))[:, :, 0, 0].transpose(1, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        e = self.embed(x)
        b, s, _ = e.shape
        valid = valid_slices(lengths, b, s, e.device)
        if self.aggregation == "centre":
            pooled = e[:, s // 2]
        elif self.aggregation == "mean":
            pooled = (e * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)
        elif self.aggregation == "max":
            pooled = e.masked_fill(~valid[..., None], float("-inf")).amax(1)
        elif self.aggregation == "attention":
            score = self.aggregate(e)[..., 0].masked_fill(~valid, float("-inf"))
            pooled = (torch.softmax(score, dim=1)[..., None] * e).sum(1)
        else:
            n = valid.sum(1).cpu()
            _, state = self.aggregate(pack_padded_sequence(e, n, batch_first=True, enforce_sorted=False))
            h = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
            pooled = torch.cat([h[-2], h[-1]], dim=1)
        return self.head(pooled)

    def slice_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights (B, S) over slices (``aggregation="attention"`` only)."""
        if self.aggregation != "attention":
            raise ValueError("slice_attention needs aggregation='attention'")
        return torch.softmax(self.aggregate(self.embed(x))[..., 0], dim=1)


def slice_classifier(in_channels: int, classes: int, aggregation: Aggregation = "gru", slim: bool = False,
                     context: int = 1) -> SliceClassifier:
    """The chapter's slice model: widths 32-64-128 and hidden 64 (slim: 8-16-32 and 16, for
    the smoke profile on 2 CPU cores), one neighbouring slice on each side as context."""
    widths, hidden = ((8, 16, 32), 16) if slim else ((32, 64, 128), 64)
    return SliceClassifier(in_channels, classes, aggregation, widths, context, hidden)


def slice_windows(x: torch.Tensor, context: int = 1) -> torch.Tensor:
    """Every slice of scans (N, C, X, Y, S) with ``context`` neighbours on each side, as
    samples of a slice-labelled task: (N * S, C, X, Y, 2 * context + 1), scan by scan and
    slice by slice (row n * S + s is slice s of scan n, its middle slice the slice
    itself); beyond the scan's ends the neighbours are 0 (padding). The ``centre``
    aggregation of ``SliceClassifier`` reads them."""
    width = 2 * context + 1
    padded = torch.nn.functional.pad(x, (context, context))
    windows = padded.unfold(-1, width, 1)  # (N, C, X, Y, S, width)
    return windows.permute(0, 4, 1, 2, 3, 5).reshape(-1, *x.shape[1:-1], width)
