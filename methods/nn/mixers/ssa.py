"""Selective self-attention (SSA, Zhang et al., arXiv 2411.12892, NeurIPS 2024).

SSA rescales each query (and optionally each value) by a learnable *inverse temperature* before the
softmax, so a query can make its own attention map sharper or flatter:

    tau_q(x_i, i) = (1 + tanh(u_h . q_i / sqrt(d_h))) * (1 + s * log i)   query temperature (token x position)
    tau_v(x_j)    =  1 + tanh(w_h . v_j / sqrt(d_h))                       value temperature
    y_i = sum_j softmax_j(tau_q(x_i, i) q_i . k_j / sqrt(d_h)) * tau_v(x_j) v_j

* position temperature ``1 + s log i`` counters attention dilution as the context grows (Sec. 3 of the
  paper). The released code (``umich-sota/selective_attention``, ``lit_gpt/model_finetune_att.py``)
  implements only this term, with ``s = exp(-exp(beta))``, ``beta`` initialised at 2.0 and one ``beta``
  per layer; ``position_param="official"`` follows it, ``"linear"`` learns ``s`` directly (starts at
  0 for an exact identity at initialisation, used when patching a pretrained model).
* query and value temperatures are built from the paper's description, not from released code:
  *weight sharing* reads the temperature off the already projected query / value (``W_q x``, ``W_v x``)
  with one vector per head, so the extra parameters are 2 * d_model + 1 per layer (well under the
  paper's 0.5% budget; a test counts them). ``u`` and ``w`` start at zero: tanh(0) = 0, identity.

Query scaling commutes with RoPE (a per-position scalar), so it is applied after the rotation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from methods.nn.mixers.attention import Attention, rotary

OFFICIAL_BETA_INIT = 2.0  # umich-sota/selective_attention lit_gpt/model_finetune_att.py: beta = 2.0


class SelectiveTemperature(nn.Module):
    """The SSA temperatures for one attention layer of ``n_heads`` heads of size ``head_dim``.

    Works on (batch, heads, length, head_dim) tensors so the same module patches our TinyLM and
    Hugging Face attention layers.
    """

    def __init__(self, n_heads: int, head_dim: int, query: bool = True, position: bool = True,
                 value: bool = True, position_param: str = "official", scaled_logits: bool = True) -> None:
        super().__init__()
        if position_param not in ("official", "linear"):
            raise ValueError(f"position_param must be 'official' or 'linear', got {position_param!r}")
        self.use_query, self.use_position, self.use_value = query, position, value
        self.position_param = position_param
        # The token temperature's logit u.q is scaled like an attention logit (1 / sqrt(head_dim)), so a
        # step on u moves the temperature about as much as a step on W_q moves the scores.
        self.logit_scale = 1 / math.sqrt(head_dim) if scaled_logits else 1.0
        self.query_vec = nn.Parameter(torch.zeros(n_heads, head_dim)) if query else None
        self.value_vec = nn.Parameter(torch.zeros(n_heads, head_dim)) if value else None
        self.position_param_value = None
        if position:
            init = OFFICIAL_BETA_INIT if position_param == "official" else 0.0
            self.position_param_value = nn.Parameter(torch.tensor(init))

    def position_strength(self) -> torch.Tensor:
        """s in ``1 + s log i``."""
        p = self.position_param_value
        return torch.exp(-torch.exp(p)) if self.position_param == "official" else p

    def query_scale(self, q: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Per-query inverse temperature, shape (batch, heads, length, 1); ``offset`` = cache length."""
        scale = torch.ones_like(q[..., :1])
        if self.query_vec is not None:
            logit = (q * self.query_vec[None, :, None, :]).sum(-1, keepdim=True) * self.logit_scale
            scale = scale + torch.tanh(logit)
        if self.position_param_value is not None:
            positions = torch.arange(offset + 1, offset + q.shape[2] + 1, device=q.device, dtype=q.dtype)
            position = 1 + self.position_strength().to(q.dtype) * torch.log(positions)
            scale = scale * position[None, None, :, None]
        return scale

    def value_scale(self, v: torch.Tensor) -> torch.Tensor:
        if self.value_vec is None:
            return torch.ones_like(v[..., :1])
        return 1 + torch.tanh((v * self.value_vec[None, :, None, :]).sum(-1, keepdim=True) * self.logit_scale)

    def apply(self, q: torch.Tensor, v: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        return q * self.query_scale(q, offset), v * self.value_scale(v)


class SelectiveAttention(Attention):
    """Causal softmax attention with SSA temperatures; ``query/position/value`` switch each term."""

    def __init__(self, d_model: int, n_heads: int, rope: bool = True, query: bool = True,
                 position: bool = True, value: bool = True, position_param: str = "official",
                 scaled_logits: bool = True) -> None:
        super().__init__(d_model, n_heads, rope=rope)
        self.temperature = SelectiveTemperature(n_heads, d_model // n_heads, query=query, position=position,
                                                value=value, position_param=position_param,
                                                scaled_logits=scaled_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (self.heads(t) for t in self.qkv(x))
        if self.rope:
            q, k = rotary(q), rotary(k)
        q, v = self.temperature.apply(q, v)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1 / math.sqrt(q.shape[-1]))
        return self.out_proj(y.transpose(1, 2).reshape_as(x))
