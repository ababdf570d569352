"""Mamba (Gu & Dao, arXiv 2312.00752) as a mixer, through ``mambapy``'s pure-PyTorch selective scan.

The CAT paper compares against Mamba on recall and copying; this runs on CPU (parallel scan in
PyTorch, no CUDA kernels). ``n_heads`` is accepted for the common signature and ignored.
"""

from __future__ import annotations

import torch
from torch import nn


class MambaMixer(nn.Module):
    def __init__(self, d_model: int, n_heads: int = 1, d_state: int = 16, expand: int = 2,
                 conv_kernel: int = 4) -> None:
        super().__init__()
        from mambapy.mamba import MambaBlock, MambaConfig  # imported here: only Mamba jobs pay for it

        self.block = MambaBlock(MambaConfig(d_model=d_model, n_layers=1, d_state=d_state,
                                            expand_factor=expand, d_conv=conv_kernel, pscan=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)
