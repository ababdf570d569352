"""Convolution-augmented attention (CAT, Li et al., arXiv 2407.05591).

CAT convolves the query, key and value embeddings with short causal filters along the sequence before
attention. With a key filter spanning the previous token, the key at a value's position carries the
key token that precedes it, so a *single* layer can match a query to "the token after this key" —
associative recall — which one plain attention layer cannot do. No positional encoding is needed: the
convolution supplies local order, and attention stays position-free, hence length generalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.nn.mixers.attention import Attention


class ShortCausalConv(nn.Module):
    """Depthwise causal 1-D convolution over the sequence: y_t = sum_{j<kernel} w_j * x_{t-j}."""

    def __init__(self, d_model: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.weight = nn.Parameter(torch.randn(d_model, 1, kernel) / kernel**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, length, d)
        h = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))
        return F.conv1d(h, self.weight, groups=x.shape[-1]).transpose(1, 2)


class ConvAttention(Attention):
    def __init__(self, d_model: int, n_heads: int, kernel: int = 3, rope: bool = False) -> None:
        super().__init__(d_model, n_heads, rope=rope)
        self.q_conv = ShortCausalConv(d_model, kernel)
        self.k_conv = ShortCausalConv(d_model, kernel)
        self.v_conv = ShortCausalConv(d_model, kernel)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.q_proj(self.q_conv(x)), self.k_proj(self.k_conv(x)), self.v_proj(self.v_conv(x))
