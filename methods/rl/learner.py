"""One GRPO update over sampled groups, and the rollout helper that produces them.

A method that builds its own rollouts (BREAD's expert-prefixed branches) hands the same
``Generation`` + rewards to ``GRPOLearner.update``; nothing here knows where rows came from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from methods.rl.generation import Generation, Sampler
from methods.rl.grpo import LogitsFn, LossConfig, ScaleRewards, group_advantages, policy_loss, token_logps

# A reward function is a plain callable: (generation, problem index of each row) -> rewards (B,).
RewardFn = Callable[[Generation, torch.Tensor], torch.Tensor]


@dataclass
class GRPOConfig(LossConfig):
    group_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    temperature: float = 1.0
    num_iterations: int = 1  # optimisation passes over one batch of rollouts (mu in the GRPO paper)
    scale_rewards: ScaleRewards = "group"


def as_logits_fn(model: nn.Module) -> LogitsFn:
    """tokens -> logits for TinyLM-style modules and transformers causal LMs alike."""
    if hasattr(model, "config") and hasattr(model, "generate"):
        return lambda tokens: model(input_ids=tokens).logits
    return model


def rollout(sampler: Sampler, prompts: Sequence[torch.Tensor], problem_ids: torch.Tensor, reward_fn: RewardFn,
            group_size: int, max_new_tokens: int | torch.Tensor, temperature: float,
            generator: torch.Generator) -> tuple[Generation, torch.Tensor, torch.Tensor]:
    """Sample ``group_size`` completions per prompt (rows grouped consecutively) and score them.

    Returns (generation, rewards (B*G,), problem index per row).
    """
    repeated = [p for p in prompts for _ in range(group_size)]
    ids = problem_ids.repeat_interleave(group_size)
    budget = max_new_tokens.repeat_interleave(group_size) if isinstance(max_new_tokens, torch.Tensor) \
        else max_new_tokens
    gen = sampler.sample(repeated, budget, temperature=temperature, generator=generator)
    return gen, reward_fn(gen, ids).float(), ids


class GRPOLearner:
    """Holds the policy, its optimiser and (when beta > 0) a frozen reference; ``update`` is one step."""

    def __init__(self, model: nn.Module, cfg: GRPOConfig, ref_model: nn.Module | None = None,
                 logits_fn: LogitsFn | None = None, ref_logits_fn: LogitsFn | None = None) -> None:
        if cfg.beta != 0.0 and ref_model is None and ref_logits_fn is None:
            raise ValueError("beta != 0 needs a reference model")
        self.model, self.cfg = model, cfg
        self.logits_fn = logits_fn or as_logits_fn(model)
        self.ref_logits_fn = ref_logits_fn or (as_logits_fn(ref_model) if ref_model is not None else None)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def update(self, gen: Generation, rewards: torch.Tensor, device: torch.device | str = "cpu"
               ) -> dict[str, float]:
        """One GRPO step on grouped rows. Groups with zero reward variance contribute no gradient."""
        cfg = self.cfg
        advantages, zero_std = group_advantages(rewards, cfg.group_size, cfg.scale_rewards)
        stats = {"reward": rewards.mean().item(), "zero_variance_fraction": zero_std.float().mean().item()}
        tokens, mask = gen.tokens.to(device), gen.completion_mask().to(device)
        advantages = advantages.to(device)
        self.model.train()
        with torch.no_grad():
            old = token_logps(self.logits_fn, tokens, cfg.temperature) if cfg.num_iterations > 1 else None
            ref = token_logps(self.ref_logits_fn, tokens, cfg.temperature) if cfg.beta != 0.0 else None
        for _ in range(cfg.num_iterations):
            logps = token_logps(self.logits_fn, tokens, cfg.temperature)
            loss, loss_stats = policy_loss(logps, old, advantages, mask, cfg, ref_logps=ref)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
        stats.update(loss=loss.item(), **loss_stats)
        return stats
