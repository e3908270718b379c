"""Mamba, a selective state-space model, on any machine; and a Mamba bottleneck for 3D maps.

Gu A., Dao T., "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
arXiv:2312.00752 (2023).

``Mamba(d_model, d_state=16, d_conv=4, expand=2)`` is a drop-in for ``mamba_ssm.Mamba``:
the same constructor arguments, the same parameters (names and shapes), the same forward
(B, L, d_model) -> (B, L, d_model). It runs

- mamba-ssm's own forward (fused CUDA kernels) on a CUDA input when ``mamba_ssm`` is
  installed (the optional ``[gpu]`` extra; it compiles with nvcc), and
- otherwise the pure-PyTorch block of ``mambapy`` (Blelloch parallel scan), whose
  parameters are mamba-ssm's: in_proj.weight (2*d_inner, d_model), conv1d.weight
  (d_inner, 1, d_conv), conv1d.bias (d_inner), x_proj.weight (dt_rank + 2*d_state,
  d_inner), dt_proj.weight (d_inner, dt_rank), dt_proj.bias (d_inner), A_log (d_inner,
  d_state), D (d_inner), out_proj.weight (d_model, d_inner), with d_inner = expand *
  d_model and dt_rank = ceil(d_model / 16).

So a checkpoint trained with one backend loads with ``strict=True`` into the other.
Each module records the backend of its last forward in ``backend``; ``mamba_backends``
lists them for a run record.

The recurrence, per channel d of the inner width and state n, for t = 1..L::

    delta_t = softplus(dt_proj(x_proj(u_t)[:dt_rank]))
    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t,   A = -exp(A_log), h_0 = 0
    y_t = C_t . h_t + D * u_t

where u is the causal depthwise convolution (conv1d) of the input's x half, passed
through SiLU, and the output is out_proj(y * SiLU(z)) with z the other half of in_proj.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import torch
from mambapy.mamba import MambaBlock, MambaConfig
from torch import nn

Scan = Literal["forward", "bidirectional"]


def cuda_kernels_installed() -> bool:
    """Whether mamba-ssm (the fused CUDA kernels) can be imported."""
    return importlib.util.find_spec("mamba_ssm") is not None


class Mamba(MambaBlock):
    """Mamba block (Gu and Dao, 2023) with mamba-ssm's parameters: (B, L, d_model) -> (B, L, d_model).

    Args:
        d_model: channels of the sequence. d_state: SSM state size per channel.
        d_conv: width of the causal depthwise convolution. expand: d_inner / d_model.

    Attributes:
        backend: the backend of the last forward, "mamba-ssm" or "mambapy" (None before).
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2) -> None:
        super().__init__(MambaConfig(d_model=d_model, n_layers=1, d_state=d_state, d_conv=d_conv,
                                     expand_factor=expand))
        # The attributes mamba_ssm.Mamba.forward reads (no parameters among them).
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner, self.dt_rank = self.config.d_inner, self.config.dt_rank
        self.use_fast_path, self.layer_idx = True, None
        self.activation, self.act = "silu", nn.SiLU()
        self.backend: str | None = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, L, d_model) -> (B, L, d_model)."""
        if hidden_states.is_cuda and cuda_kernels_installed():
            from mamba_ssm import Mamba as CudaMamba

            self.backend = "mamba-ssm"
            return CudaMamba.forward(self, hidden_states)
        self.backend = "mambapy"
        return super().forward(hidden_states)


class MambaBottleneck(nn.Module):
    """Mamba over a 3D feature map read as a sequence: (B, C, X, Y, Z) -> (B, C, X, Y, Z).

    The map is flattened to a sequence of X*Y*Z voxels (C-order: Z varies fastest), each a
    token of C channels; then ``seq + Mamba(LayerNorm(seq))`` and reshaped back. With
    ``scan="bidirectional"`` a second Mamba with its own parameters reads the reversed
    sequence (as Vision Mamba, Zhu et al., ICML 2024, and 3D medical Mamba models do) and
    the residual adds the mean of the two directions, so the update keeps the scale of a
    one-direction scan.

    Args:
        channels: C, the model width of the Mamba blocks.
        scan: "forward" (one direction) or "bidirectional" (forward and reversed, averaged).
        d_state, d_conv, expand: of each Mamba block.
    """

    def __init__(self, channels: int, scan: Scan = "bidirectional", d_state: int = 16,
                 d_conv: int = 4, expand: int = 2) -> None:
        super().__init__()
        if scan not in ("forward", "bidirectional"):
            raise ValueError(f"unknown scan {scan!r}; choose 'forward' or 'bidirectional'")
        self.scan = scan
        self.norm = nn.LayerNorm(channels)
        self.mamba = Mamba(channels, d_state=d_state, d_conv=d_conv, expand=expand)
        self.mamba_reversed = (Mamba(channels, d_state=d_state, d_conv=d_conv, expand=expand)
                               if scan == "bidirectional" else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, X, Y, Z) -> (B, C, X, Y, Z)."""
        seq = x.flatten(2).transpose(1, 2)  # (B, L, C)
        h = self.norm(seq)
        update = self.mamba(h)
        if self.mamba_reversed is not None:
            reversed_update = self.mamba_reversed(h.flip(1)).flip(1)
            update = 0.5 * (update + reversed_update)
        return (seq + update).transpose(1, 2).reshape(x.shape)


def mamba_backends(model: nn.Module) -> list[str]:
    """The backends the model's Mamba blocks ran with in their last forward (sorted, unique)."""
    return sorted({m.backend for m in model.modules() if isinstance(m, Mamba) and m.backend})
