"""The pretrained transformer (PTF) behind every FedYolo variant, as one small interface.

``ViTClassifier`` exposes what the modules of ``modules.py`` hook into, whichever transformer is inside:
``embeddings`` (output: tokens ``(batch, tokens, d)``, class token first), ``blocks`` (each maps tokens
to tokens), ``features(x)`` (the final class-token representation) and one linear head per task.

- Smoke: ``TinyViT`` below, a hand-written ViT for 1-D signals (patches are non-overlapping windows),
  pretrained inside the DAG on a source task.
- Paper: transformers' ``ViTModel`` (ViT-B/16 and its sizes, arXiv 2307.04905 uses ImageNet-21k
  ViTs) loaded by hub id or local path through ``load_hf_vit``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TinyViTConfig:
    in_channels: int = 1
    length: int = 40  # signal length
    patch: int = 8
    d_model: int = 96
    n_layers: int = 3
    n_heads: int = 4
    mlp_ratio: int = 4


class Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections named as in transformers' ViT
    (``q_proj``, ``v_proj``), so one LoRA target list serves both backbones."""

    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        if d % n_heads:
            raise ValueError(f"d_model {d} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.o_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (p(x).view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, cfg: TinyViTConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.n_heads)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model), nn.GELU(),
                                 nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Signal ``(batch, channels, length)`` -> [CLS] + patch tokens + learned positions."""

    def __init__(self, cfg: TinyViTConfig) -> None:
        super().__init__()
        if cfg.length % cfg.patch:
            raise ValueError(f"signal length {cfg.length} is not a multiple of patch {cfg.patch}")
        self.proj = nn.Conv1d(cfg.in_channels, cfg.d_model, cfg.patch, stride=cfg.patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        self.pos = nn.Parameter(torch.randn(1, cfg.length // cfg.patch + 1, cfg.d_model) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        tokens = self.proj(x).transpose(1, 2)
        return torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], 1) + self.pos


class TinyViT(nn.Module):
    """A small ViT encoder for 1-D signals (no head: heads live in ``ViTClassifier``)."""

    def __init__(self, cfg: TinyViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = PatchEmbed(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embeddings(x)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)[:, 0]


class ViTClassifier(nn.Module):
    """A transformer encoder plus one head per task; ``forward(x, task)`` gives that task's logits."""

    def __init__(self, encoder: nn.Module, embeddings: nn.Module, blocks: nn.ModuleList, width: int,
                 encode) -> None:
        super().__init__()
        self.encoder = encoder
        self.width = width
        self.heads = nn.ModuleDict()
        # Kept in lists so they are not registered twice (they already live inside ``encoder``).
        self._embeddings, self._blocks, self._encode = [embeddings], [blocks], [encode]

    @property
    def embeddings(self) -> nn.Module:
        return self._embeddings[0]

    @property
    def blocks(self) -> nn.ModuleList:
        return self._blocks[0]

    def add_head(self, task: str, num_classes: int, generator: torch.Generator | None = None) -> nn.Linear:
        head = nn.Linear(self.width, num_classes)
        with torch.no_grad():
            head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.02)
            head.bias.zero_()
        self.heads[task] = head
        return head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._encode[0](x)

    def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
        if task not in self.heads:
            raise KeyError(f"no head for task '{task}'; heads: {', '.join(self.heads)}")
        return self.heads[task](self.features(x))


def tiny_vit_classifier(cfg: TinyViTConfig) -> ViTClassifier:
    encoder = TinyViT(cfg)
    return ViTClassifier(encoder, encoder.embeddings, encoder.blocks, cfg.d_model, encoder)


def save_tiny_vit(model: ViTClassifier, path: Path) -> None:
    """Save the encoder (not the source task's head) and its config."""
    torch.save({"config": asdict(model.encoder.cfg), "encoder": model.encoder.state_dict()}, path)


def load_tiny_vit(path: Path) -> ViTClassifier:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = tiny_vit_classifier(TinyViTConfig(**blob["config"]))
    model.encoder.load_state_dict(blob["encoder"])
    return model


def load_hf_vit(name_or_path: str) -> ViTClassifier:
    """transformers' ViT encoder by hub id (e.g. ``google/vit-base-patch16-224-in21k``) or local path.

    Input: images ``(batch, 3, H, W)`` normalised as the checkpoint expects. The class token of the
    final layer norm is the representation, as in ViT's classification head.
    """
    from transformers import ViTModel

    encoder = ViTModel.from_pretrained(name_or_path, add_pooling_layer=False)
    size = encoder.config.image_size
    layers = encoder.layers if hasattr(encoder, "layers") else encoder.encoder.layer  # transformers 5 / 4

    def encode(x: torch.Tensor) -> torch.Tensor:
        # Images in [0, 1] at their own size -> the checkpoint's resolution, normalised with mean 0.5 and
        # std 0.5 as google/vit-*-in21k expect.
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return encoder(pixel_values=(x - 0.5) / 0.5).last_hidden_state[:, 0]

    return ViTClassifier(encoder, encoder.embeddings, layers, encoder.config.hidden_size, encode)
