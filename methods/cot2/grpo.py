"""GRPO for continuous-token policies: MTS and Dirichlet rollouts (CoT2, arXiv 2505.23648, Sec. 5).

A rollout of the whole batch (prompts x rollouts rows) is decoded without gradients; the same inputs
are then teacher-forced once with gradients to get each row's per-step log-probs:

- MTS: log pi(step) = sum_k log softmax(logits / K)[token_k] over the K sampled tokens (official
  ``continuous_train_grpo_mts.py``: product of the K tokens' probabilities; K = 1 is discrete GRPO);
- Dirichlet: log density of the drawn simplex point under Dirichlet(scale * probs) on its support;
- answer: log softmax(logits)[sampled answer]; reward 1 when the answer is right.

Advantages and the clipped surrogate come from the shared engine ``methods.rl.grpo`` (group-normalised
advantages; ``bnpo`` aggregation = the official mean over rollouts x steps); one update per batch, as
the official loop (its old policy is a fresh copy of the current one each batch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmarks.reasoning import ReasoningSplit
from methods.cot2.decode import check_generator, dirichlet_concentration, dirichlet_log_prob, rollout
from methods.cot2.model import embed_mixture, embed_tokens, logits
from methods.cot2.optim import FlatAdamW
from methods.rl.grpo import LossConfig, group_advantages, policy_loss


@dataclass
class GRPOSettings:
    sampling: str = "mts"
    k: int = 1
    normalize: bool = True
    dirichlet_scale: float = 1.0
    steps: int = 100
    prompts_per_step: int = 16
    rollouts: int = 8
    lr: float = 5e-6
    weight_decay: float = 0.01
    clip_epsilon: float = 0.1
    beta: float = 0.0


def step_log_probs(model, prompt: torch.Tensor, weights: torch.Tensor, tokens: torch.Tensor | None,
                   answer: torch.Tensor, s: GRPOSettings,
                   support: torch.Tensor | None = None) -> torch.Tensor:
    """(N, S + 1) log-probs of the rollout's steps and answer under the model, with gradients."""
    S = weights.shape[1]
    embeds = torch.cat([embed_tokens(model, prompt), embed_mixture(model, weights)], 1)
    out = logits(model, embeds, last=S + 1).float()
    step_logits = out[:, :S]
    if s.sampling == "mts":
        scaled = step_logits / s.k if s.normalize else step_logits
        step_lp = scaled.log_softmax(-1).gather(-1, tokens).sum(-1)
    else:
        conc = dirichlet_concentration(step_logits.softmax(-1), support, s.dirichlet_scale)
        step_lp = dirichlet_log_prob(weights, conc, support)
    answer_lp = out[:, S].log_softmax(-1).gather(-1, answer[:, None])
    return torch.cat([step_lp, answer_lp], 1)


def train_grpo(model, split: ReasoningSplit, s: GRPOSettings, generator: torch.Generator,
               on_step: Callable[[int, dict[str, float]], None] | None = None) -> None:
    if s.sampling not in ("mts", "dirichlet"):
        raise ValueError(f"grpo sampling must be 'mts' or 'dirichlet', got {s.sampling!r}")
    if s.k < 1:
        raise ValueError(f"grpo k (tokens per MTS step) must be >= 1, got {s.k}")
    check_generator(generator, split.device)
    opt = FlatAdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    cfg = LossConfig(loss_type="bnpo", epsilon_low=s.clip_epsilon, beta=s.beta)
    ref_model = None
    if s.beta:
        import copy

        ref_model = copy.deepcopy(model).eval()
    for step in range(1, s.steps + 1):
        idx = torch.randint(0, len(split), (s.prompts_per_step,), generator=generator, device=split.device)
        prompt = split.prompt[idx].repeat_interleave(s.rollouts, 0)
        gold = split.answer[idx].repeat_interleave(s.rollouts)
        out = rollout(model, prompt, split.num_steps, s.sampling, k=s.k, normalize=s.normalize,
                      dirichlet_scale=s.dirichlet_scale, sample_answer=True, generator=generator)
        rewards = (out.answer == gold).float()
        advantages, _ = group_advantages(rewards, s.rollouts)
        model.train()
        logps = step_log_probs(model, prompt, out.step_weights, out.step_tokens, out.answer, s, out.support)
        ref_logps = None
        if ref_model is not None:
            with torch.no_grad():
                ref_logps = step_log_probs(ref_model, prompt, out.step_weights, out.step_tokens, out.answer,
                                           s, out.support)
        loss, stats = policy_loss(logps, None, advantages, torch.ones_like(logps), cfg, ref_logps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step, {"reward": rewards.mean().item(), "loss": loss.item(), **stats})
