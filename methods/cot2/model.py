"""GPT-2 (transformers ``GPT2LMHeadModel``) with a continuous-token input mode.

A continuous token is a point on the probability simplex over the vocabulary; its input embedding is
the probability-weighted sum of the token embeddings, ``alpha @ W_te`` (CoT2, arXiv 2505.23648, Eq. 1).
A discrete token is the one-hot special case, so one forward over input embeddings serves all variants.

``logits`` is a lean re-statement of GPT-2's forward over the very parameters of the transformers
module (same pre-LN blocks, tanh GELU, tied head; ``test_cot2`` checks equality with
``GPT2LMHeadModel.forward``). It skips the generic machinery (masks, caches, output classes) whose
per-call overhead dominates at these sizes; on a CUDA box or for long prompts HF's forward is
equivalent and can be used instead (``use_hf_forward``, HF-built models only).

``build_gpt2(..., hf=False)`` builds ``GPT2Twin``: the same parameters under the same names (its state dict
loads into ``GPT2LMHeadModel`` and back) with GPT-2's initialisation, as plain ``torch.nn`` modules.
Why: importing transformers' modelling code costs ~3 CPU-s per process, more than a smoke training run
of these models; ``hf=True`` (the paper profile) builds the transformers module itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TwinConfig:
    """The GPT2Config fields the lean forward reads (GPT2Config defaults: eps 1e-5, init std 0.02)."""

    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    resid_pdrop: float = 0.0
    embd_pdrop: float = 0.0
    attn_pdrop: float = 0.0
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02


class _Conv1D(nn.Module):
    """GPT-2's linear layer: ``x @ weight + bias`` with weight (in, out), as transformers' Conv1D."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))


class _Block(nn.Module):
    def __init__(self, cfg: TwinConfig) -> None:
        super().__init__()
        d = cfg.n_embd
        self.ln_1 = nn.LayerNorm(d, eps=cfg.layer_norm_epsilon)
        self.attn = nn.Module()
        self.attn.c_attn, self.attn.c_proj = _Conv1D(d, 3 * d), _Conv1D(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=cfg.layer_norm_epsilon)
        self.mlp = nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = _Conv1D(d, 4 * d), _Conv1D(4 * d, d)


class GPT2Twin(nn.Module):
    """``GPT2LMHeadModel``'s parameters (names, shapes, tied head, initialisation) without transformers."""

    def __init__(self, cfg: TwinConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = cfg
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.transformer.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.transformer.h = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layer))
        self.transformer.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as GPT-2
        # GPT-2 init (transformers GPT2PreTrainedModel._init_weights): N(0, 0.02) weights and embeddings,
        # zero biases, unit LayerNorms, residual projections N(0, 0.02 / sqrt(2 n_layer)).
        std = cfg.initializer_range
        with torch.no_grad():
            for emb in (self.transformer.wte, self.transformer.wpe):
                emb.weight.normal_(0.0, std, generator=generator)
            for blk in self.transformer.h:
                for layer in (blk.attn.c_attn, blk.mlp.c_fc):
                    layer.weight.normal_(0.0, std, generator=generator)
                for layer in (blk.attn.c_proj, blk.mlp.c_proj):
                    layer.weight.normal_(0.0, std / math.sqrt(2 * cfg.n_layer), generator=generator)


def build_gpt2(vocab_size: int, n_positions: int, d_model: int, n_layers: int, n_heads: int,
               dropout: float = 0.0, hf: bool = False) -> nn.Module:
    """A GPT-2 of this size: transformers' ``GPT2LMHeadModel`` (``hf``) or its import-free twin."""
    if d_model % n_heads:
        raise ValueError(f"d_model {d_model} must be divisible by n_heads {n_heads}")
    if not hf:
        return GPT2Twin(TwinConfig(vocab_size, n_positions, d_model, n_layers, n_heads, dropout, dropout,
                                   dropout))
    from transformers import GPT2Config, GPT2LMHeadModel  # lazily: ~3 CPU-s of imports

    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=d_model, n_layer=n_layers,
                        n_head=n_heads, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                        bos_token_id=None, eos_token_id=None)
    return GPT2LMHeadModel(config)


def embed_tokens(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    return F.embedding(tokens, model.transformer.wte.weight)


def embed_mixture(model: nn.Module, weights: torch.Tensor) -> torch.Tensor:
    """(..., V) simplex weights -> (..., d) embeddings: the continuous token."""
    return weights @ model.transformer.wte.weight


def logits(model: nn.Module, embeds: torch.Tensor, last: int = 0,
           use_hf_forward: bool = False, cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
           ) -> torch.Tensor:
    """Next-token logits at every position (or the last ``last`` positions) for input embeddings (B, T, d).

    ``cache`` (decoding, no gradients): a list holding each layer's keys and values of the positions
    seen so far; ``embeds`` are then the *new* positions only, and the list is extended in place (an empty
    list starts a sequence). Same numbers as recomputing the whole prefix, a fraction of the work.
    """
    if use_hf_forward:
        out = model(inputs_embeds=embeds).logits
        return out[:, -last:] if last else out
    tr, cfg = model.transformer, model.config
    B, T, d = embeds.shape
    past = cache[0][0].shape[2] if cache else 0
    if past + T > cfg.n_positions:
        raise ValueError(f"sequence of {past + T} tokens exceeds the model's {cfg.n_positions} positions")
    if past and T > 1:
        raise ValueError("with a non-empty cache, feed one new position at a time")
    H = cfg.n_head
    p = cfg.resid_pdrop if model.training else 0.0

    def drop(x: torch.Tensor, rate: float) -> torch.Tensor:
        return F.dropout(x, rate) if rate else x  # no dispatch at all when off

    h = drop(embeds + tr.wpe.weight[past: past + T], cfg.embd_pdrop if model.training else 0.0)
    for layer, blk in enumerate(tr.h):
        a = F.layer_norm(h, (d,), blk.ln_1.weight, blk.ln_1.bias, blk.ln_1.eps)
        qkv = torch.addmm(blk.attn.c_attn.bias, a.reshape(-1, d), blk.attn.c_attn.weight)
        q, k, v = qkv.view(B, T, 3, H, d // H).permute(2, 0, 3, 1, 4).unbind(0)
        if cache is not None:
            if layer < len(cache):
                k, v = torch.cat([cache[layer][0], k], 2), torch.cat([cache[layer][1], v], 2)
                cache[layer] = (k, v)
            else:
                cache.append((k, v))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=not past,
                                           dropout_p=cfg.attn_pdrop if model.training else 0.0)
        o = torch.addmm(blk.attn.c_proj.bias, o.transpose(1, 2).reshape(B * T, d), blk.attn.c_proj.weight)
        h = h + drop(o.view(B, T, d), p)
        a = F.layer_norm(h, (d,), blk.ln_2.weight, blk.ln_2.bias, blk.ln_2.eps)
        a = F.gelu(torch.addmm(blk.mlp.c_fc.bias, a.reshape(-1, d), blk.mlp.c_fc.weight), approximate="tanh")
        h = h + drop(torch.addmm(blk.mlp.c_proj.bias, a, blk.mlp.c_proj.weight).view(B, T, d), p)
    if last:
        h = h[:, -last:]
    h = F.layer_norm(h, (d,), tr.ln_f.weight, tr.ln_f.bias, tr.ln_f.eps)
    return h @ tr.wte.weight.T
