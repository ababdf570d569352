"""Landmark CAT (LCAT, Li et al., arXiv 2407.05591, Sec. 5 "landmark convolution").

The sequence is cut into blocks of ``block`` tokens. A *long* causal convolution (a learned filter as
long as a block) summarises each finished block into one landmark key. A query scores the landmarks of
the finished blocks before its own, picks one (top-1 at evaluation; a softmax mixture while training,
so the choice is differentiable), and attends with ordinary softmax attention only to the tokens of the
chosen block and to the tokens of its own block so far. Queries and keys also pass through CAT's short
convolutions. Cost per query is O(n / block + block) instead of O(n); this module computes it densely
with masks (clear, not fast), which is fine at smoke sizes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from methods.nn.mixers.cat import ConvAttention


class LandmarkConvAttention(ConvAttention):
    def __init__(self, d_model: int, n_heads: int, kernel: int = 3, block: int = 16,
                 rope: bool = False) -> None:
        super().__init__(d_model, n_heads, kernel=kernel, rope=rope)
        if block < 2:
            raise ValueError(f"block must be >= 2, got {block}")
        self.block = block
        # Long convolution over one block: landmark_j = sum_t filter[t] * k_{end of block j - t}.
        self.landmark_filter = nn.Parameter(torch.full((d_model, block), 1.0 / block))

    def landmarks(self, k: torch.Tensor) -> torch.Tensor:
        """(batch, heads, n_blocks, head_dim) summaries of each (zero-padded) block of keys."""
        b, h, n, dh = k.shape
        n_blocks = math.ceil(n / self.block)
        padded = torch.nn.functional.pad(k, (0, 0, 0, n_blocks * self.block - n))
        blocks = padded.view(b, h, n_blocks, self.block, dh)
        filt = self.landmark_filter.view(h, dh, self.block).flip(-1).transpose(1, 2)  # (h, block, dh)
        return (blocks * filt[None, :, None]).sum(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (self.heads(t) for t in self.qkv(x))
        b, h, n, dh = q.shape
        scale = 1 / math.sqrt(dh)
        pos = torch.arange(n, device=x.device)
        block_of = pos // self.block
        n_blocks = int(block_of[-1]) + 1
        # Which block each query picks among finished earlier blocks.
        land = self.landmarks(k)  # (b, h, nb, dh)
        land_scores = (q @ land.transpose(-1, -2)) * scale  # (b, h, n, nb)
        earlier = block_of[None, :] > torch.arange(n_blocks, device=x.device)[:, None]  # (nb, n)
        land_scores = land_scores.masked_fill(~earlier.T[None, None], float("-inf"))
        has_earlier = block_of > 0
        if self.training:
            choice = torch.softmax(land_scores, -1).nan_to_num(0.0)  # soft choice, differentiable
        else:
            choice = nn.functional.one_hot(land_scores.argmax(-1), n_blocks).to(q.dtype)
            choice = choice * has_earlier[None, None, :, None]
        # Token scores; keys weighted by log(choice of their block), own block always allowed.
        scores = (q @ k.transpose(-1, -2)) * scale  # (b, h, n, n)
        key_choice = choice[..., block_of]  # (b, h, n, n): weight of each key's block for each query
        own = (block_of[:, None] == block_of[None, :]) & (pos[:, None] >= pos[None, :])
        weight = torch.where(own[None, None], torch.ones_like(key_choice), key_choice)
        causal_other = (block_of[:, None] > block_of[None, :])[None, None]
        allowed = own[None, None] | (causal_other & (weight > 0))
        scores = (scores + torch.log(weight.clamp_min(1e-9))).masked_fill(~allowed, float("-inf"))
        y = torch.softmax(scores, -1) @ v
        return self.out_proj(y.transpose(1, 2).reshape_as(x))
