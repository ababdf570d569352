"""GRPO: group-normalised advantages and the clipped-ratio policy loss over per-token log-probs.

Follows DeepSeekMath's GRPO (Shao et al., arXiv 2402.03300) with the aggregations of Dr. GRPO
(Liu et al., arXiv 2503.20783) and DAPO (Yu et al., arXiv 2503.14476), in the conventions of TRL 1.16's
``GRPOTrainer._compute_loss`` (tests/test_bread_engine.py checks loss and gradients against it).

Everything here works on precomputed tensors, so a policy whose log-probs do not come from a token
softmax (e.g. CoT2's continuous tokens) reuses ``policy_loss`` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]
ScaleRewards = Literal["group", "batch", "none"]
LogitsFn = Callable[[torch.Tensor], torch.Tensor]  # tokens (B, L) -> logits (B, L, V)


@dataclass
class LossConfig:
    """Knobs of the policy loss (TRL's names and defaults)."""

    loss_type: LossType = "dapo"
    epsilon_low: float = 0.2
    epsilon_high: float | None = None  # None: same as epsilon_low (DAPO's clip-higher uses 0.28)
    beta: float = 0.0  # KL(pi || ref) coefficient (k3 estimator); 0 needs no reference model
    max_completion_length: int | None = None  # dr_grpo's constant normaliser; default: the mask width
    kl_bias_correction: bool = True  # KL x ratio: unbiased reverse-KL gradient (DeepSeek-V3.2; TRL's default)


def _std(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Bessel-corrected standard deviation (TRL's ``nanstd`` on NaN-free input)."""
    return x.std(dim=dim, unbiased=True) if x.shape[dim] > 1 else torch.zeros_like(x.mean(dim))


def group_advantages(rewards: torch.Tensor, group_size: int, scale: ScaleRewards = "group",
                     eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages ``(r - mean_group) / (std + eps)`` for rewards laid out group by group.

    Returns (advantages (N,), zero_std (N,) bool: the row's group had no reward variance, so it
    carries no learning signal under GRPO).
    """
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be 1-D with a multiple of group_size={group_size} entries, "
                         f"got shape {tuple(rewards.shape)}")
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(1).repeat_interleave(group_size)
    group_std = _std(grouped, 1).repeat_interleave(group_size)
    if scale == "batch":
        std = _std(rewards, 0).expand_as(rewards)
    elif scale in ("group", "none"):
        std = group_std
    else:
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    advantages = rewards - mean
    if scale != "none":
        advantages = advantages / (std + eps)
    zero_std = torch.isclose(group_std, torch.zeros_like(group_std))
    return advantages, zero_std


def zero_variance_fraction(rewards: torch.Tensor, group_size: int) -> float:
    """Share of groups whose rewards are all equal (all fail or all succeed): no GRPO gradient."""
    grouped = rewards.view(-1, group_size)
    return (grouped.max(1).values == grouped.min(1).values).float().mean().item()


def token_logps(logits_fn: LogitsFn, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-prob of each token given its prefix: (B, L) tokens -> (B, L-1), aligned with tokens[:, 1:]."""
    logits = logits_fn(tokens[:, :-1]).float() / temperature
    return logits.gather(-1, tokens[:, 1:, None]).squeeze(-1) - logits.logsumexp(-1)


def policy_loss(logps: torch.Tensor, old_logps: torch.Tensor | None, advantages: torch.Tensor,
                mask: torch.Tensor, cfg: LossConfig, ref_logps: torch.Tensor | None = None,
                num_items: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped-ratio surrogate with optional KL, aggregated per ``cfg.loss_type``.

    logps, old_logps, ref_logps, mask: (B, T); advantages: (B,) or (B, T). ``old_logps=None`` means
    on-policy (ratio 1, the gradient of plain policy gradient). ``num_items``: dapo's token normaliser
    (default: tokens in this batch; pass the count over a whole generation batch when accumulating).
    """
    mask = mask.to(logps.dtype)
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    old = logps.detach() if old_logps is None else old_logps
    eps_low = cfg.epsilon_low
    eps_high = cfg.epsilon_low if cfg.epsilon_high is None else cfg.epsilon_high
    ratio = torch.exp(logps - old)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    per_token = -torch.min(ratio * advantages, clipped * advantages)
    stats: dict[str, float] = {}
    if cfg.beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta != 0 needs ref_logps (log-probs of the reference policy)")
        delta = ref_logps - logps
        kl = torch.exp(delta) - delta - 1
        if cfg.kl_bias_correction:
            kl = kl * ratio
        per_token = per_token + cfg.beta * kl
        stats["kl"] = ((kl * mask).sum() / mask.sum().clamp(min=1)).item()
    if cfg.loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif cfg.loss_type == "bnpo":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    elif cfg.loss_type == "dr_grpo":
        width = cfg.max_completion_length or mask.shape[1]
        loss = (per_token * mask).sum() / (per_token.shape[0] * width)
    elif cfg.loss_type == "dapo":
        denom = mask.sum().clamp(min=1.0) if num_items is None else max(float(num_items), 1.0)
        loss = (per_token * mask).sum() / denom
    else:
        raise ValueError(f"loss_type must be one of grpo, bnpo, dr_grpo, dapo; got {cfg.loss_type!r}")
    with torch.no_grad():
        low = ((ratio < 1 - eps_low) & (advantages < 0)).to(mask.dtype)
        high = ((ratio > 1 + eps_high) & (advantages > 0)).to(mask.dtype)
        stats["clip_fraction"] = (((low + high) * mask).sum() / mask.sum().clamp(min=1)).item()
    return loss, stats


def sft_loss(logits_fn: LogitsFn, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Teacher-forced cross-entropy on the masked tokens (mask aligned with tokens[:, 1:])."""
    logits = logits_fn(tokens[:, :-1]).float()
    ce = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten(), reduction="none").view_as(mask)
    mask = mask.to(ce.dtype)
    return (ce * mask).sum() / mask.sum().clamp(min=1)
