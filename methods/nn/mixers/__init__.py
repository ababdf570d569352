"""Sequence mixers behind one signature: ``Mixer(d_model, n_heads, **kwargs)``, ``forward(x) -> x``.

x has shape (batch, length, d_model) and mixing is causal. Adding a mixer is one file here plus one
line in ``MIXERS``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from methods.nn.mixers.attention import Attention
from methods.nn.mixers.cat import ConvAttention
from methods.nn.mixers.lcat import LandmarkConvAttention
from methods.nn.mixers.mamba import MambaMixer
from methods.nn.mixers.ssa import SelectiveAttention

MIXERS: dict[str, type[nn.Module]] = {
    "attention": Attention,
    "cat": ConvAttention,
    "lcat": LandmarkConvAttention,
    "mamba": MambaMixer,
    "ssa": SelectiveAttention,
}


def build_mixer(name: str, d_model: int, n_heads: int, **kwargs: Any) -> nn.Module:
    if name not in MIXERS:
        raise KeyError(f"unknown mixer '{name}'; known: {', '.join(sorted(MIXERS))}")
    return MIXERS[name](d_model, n_heads, **kwargs)
