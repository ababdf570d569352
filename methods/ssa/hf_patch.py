"""SSA as a patch on a pretrained Hugging Face causal LM (GPT-2, GPT-NeoX/Pythia, Llama, Qwen2, ...).

Every model family that routes attention through transformers' ``AttentionInterface`` (all of these
do in transformers 5) calls ``attention_interface(module, query, key, value, mask, ...)`` with
(batch, heads, length, head_dim) tensors after RoPE and after the KV-cache update. We register one
more implementation, ``"ssa"``: it scales the queries and values by each attention module's
``ssa_temperature`` (:class:`methods.nn.mixers.ssa.SelectiveTemperature`) and hands over to
transformers' own SDPA implementation. The pretrained weights are untouched; with the temperatures at
their identity initialisation (``position_param="linear"``: all new parameters zero) the patched
model computes exactly what the original computes.

Position ``i`` of a query is ``key_length - query_length + (its index)`` + 1, i.e. its place in the
context when generating with a cache; left-padded batches shift it by the padding (the paper's
fine-tuning uses unpadded packed text).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from methods.nn.mixers.ssa import SelectiveTemperature

IMPLEMENTATION = "ssa"


def ssa_sdpa_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       attention_mask: torch.Tensor | None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    temperature: SelectiveTemperature | None = getattr(module, "ssa_temperature", None)
    if temperature is not None:
        query, value = temperature.apply(query, value, offset=key.shape[2] - query.shape[2])
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(IMPLEMENTATION, ssa_sdpa_attention)
    # The same masks as SDPA (padding, cache offsets); an unregistered name would get no mask at all.
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


def attention_modules(model: nn.Module) -> Iterator[nn.Module]:
    """Self-attention modules: a ``layer_idx`` and a head size (``head_dim``; ``head_size`` in NeoX)."""
    for module in model.modules():
        if head_size(module) and hasattr(module, "layer_idx") and not hasattr(module, "self_attn"):
            yield module


def head_size(module: nn.Module) -> int | None:
    return getattr(module, "head_dim", None) or getattr(module, "head_size", None)


def _heads(module: nn.Module, config) -> tuple[int, int]:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_heads = getattr(text, "num_attention_heads", None) or text.n_head
    n_kv = getattr(text, "num_key_value_heads", None) or n_heads
    return n_heads, n_kv


def patch(model: nn.Module, query: bool = True, position: bool = True, value: bool = True,
          position_param: str = "linear") -> list[SelectiveTemperature]:
    """Attach SSA temperatures to every attention module and switch the model to the ``ssa`` kernel.

    Returns the new temperature modules (their parameters are the only new ones). Raises if the
    model has no attention module this patch recognises.
    """
    register()
    modules = list(attention_modules(model))
    if not modules:
        raise ValueError(f"{type(model).__name__}: no attention modules with head_dim/layer_idx found; "
                         "SSA patches transformers models that use the AttentionInterface")
    n_heads, n_kv = _heads(modules[0], model.config)
    param = next(model.parameters())
    added = []
    for module in modules:
        temp = SelectiveTemperature(n_heads, head_size(module), query=query, position=position, value=value,
                                    position_param=position_param)
        if temp.value_vec is not None and n_kv != n_heads:  # grouped-query attention: one per kv head
            temp.value_vec = nn.Parameter(torch.zeros(n_kv, head_size(module)))
        module.ssa_temperature = temp.to(device=param.device, dtype=param.dtype)
        added.append(module.ssa_temperature)
    model.set_attn_implementation(IMPLEMENTATION)
    return added


def ssa_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for name, p in model.named_parameters() if "ssa_temperature" in name]


def extra_parameter_fraction(model: nn.Module) -> float:
    extra = sum(p.numel() for p in ssa_parameters(model))
    return extra / (sum(p.numel() for p in model.parameters()) - extra)
