"""The policy: a tiny Llama-architecture causal LM built from a config (no download), saved and loaded
with transformers' own ``save_pretrained`` / ``from_pretrained`` so smoke and paper scale share one path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel


@dataclass
class PolicyArgs:
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp_width: int = 192
    max_len: int = 128
    init_std: float = 0.1  # initializer_range: wider than the 0.02 default, tiny models learn much faster


def build_policy(vocab_size: int, args: PolicyArgs, pad_id: int, bos_id: int, eos_id: int
                 ) -> LlamaForCausalLM:
    """A from-scratch Llama (RoPE, RMSNorm, SwiGLU); Llama's config round-trips through save/load cleanly."""
    if args.d_model % args.n_heads:
        raise ValueError(f"d_model {args.d_model} must be divisible by n_heads {args.n_heads}")
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=args.d_model, intermediate_size=args.mlp_width,
                         num_hidden_layers=args.n_layers, num_attention_heads=args.n_heads,
                         num_key_value_heads=args.n_heads, max_position_embeddings=args.max_len,
                         pad_token_id=pad_id, bos_token_id=bos_id, eos_token_id=eos_id,
                         tie_word_embeddings=True, attn_implementation="sdpa",
                         initializer_range=args.init_std)
    return LlamaForCausalLM(config)


def save_policy(model: PreTrainedModel, directory: Path) -> None:
    model.save_pretrained(directory, safe_serialization=True)


def load_policy(path: str | Path, device: torch.device, dtype: torch.dtype = torch.float32
                ) -> PreTrainedModel:
    """A causal LM by local path or hub id (the paper profile passes a hub id here)."""
    text = str(path)
    if (text.startswith((".", "/")) or text.count("/") > 1) and not Path(text).is_dir():
        raise FileNotFoundError(f"no saved policy at {text}: run the SFT stage first (snakemake does)")
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    return model.to(device)


def num_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
