"""TLDR: length-regularised GRPO with multi-level length control (arXiv 2505.07961, Sec. "Reinforcement").

Each training prompt carries a level token (short, medium, long) and each level its own token budget
``B``; a response's reward is its correctness minus a length penalty relative to that budget,

    r = 1[correct] - alpha * |L - B| / B        (penalty="distance", the default), or
    r = 1[correct] - alpha * max(0, L - B) / B  (penalty="over": only exceeding the budget costs),

so the policy learns to drop the redundant re-checks and to read the level token as how long to
think. With "over" every level collapses to the shortest correct trace (nothing rewards thinking
longer); "distance" makes each level aim at its budget, which is what multi-level control asks for.
The policy update is the shared engine's GRPO (``methods/rl``): group-normalised advantages and the
clipped-ratio loss; rollouts come from the KV-cached sampler of ``methods/tldr/generation``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from benchmarks.verbose_sum import LEVELS, Split, parse_responses
from methods.rl import Generation, GRPOConfig, GRPOLearner
from methods.tldr.generation import SpecialTokens, sample


@dataclass
class LengthReward:
    """Correctness minus the over-budget length penalty of each response's level."""

    budgets: dict[str, int]
    alpha: float
    penalty: str = "distance"

    def __post_init__(self) -> None:
        if self.penalty not in ("distance", "over"):
            raise ValueError(f"penalty must be 'distance' or 'over', got {self.penalty!r}")

    def budget_of(self, level_ids: torch.Tensor) -> torch.Tensor:
        table = torch.zeros(max(LEVELS.values()) + 1)
        for name, budget in self.budgets.items():
            table[LEVELS[name]] = float(budget)
        return table[level_ids]

    def __call__(self, responses: torch.Tensor, answers: torch.Tensor, level_ids: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        answer, length, _ = parse_responses(responses)
        correct = (answer == answers).float()
        budget = self.budget_of(level_ids)
        excess = length.float() - budget
        excess = excess.abs() if self.penalty == "distance" else excess.clamp(min=0)
        penalty = self.alpha * excess / budget
        return correct - penalty, length


def train_tldr(model: PreTrainedModel, train: Split, reward: LengthReward, cfg: GRPOConfig, steps: int,
               prompts_per_step: int, max_new_tokens: int, tokens: SpecialTokens, generator: torch.Generator,
               log: Callable[[str], None], log_every: int = 10,
               on_log: Callable[[int, dict[str, float]], None] | None = None) -> None:
    """GRPO steps: sample prompts at random levels, ``group_size`` responses each, one engine update."""
    learner = GRPOLearner(model, cfg)
    by_budget = sorted(reward.budgets, key=reward.budgets.__getitem__)  # not the config key order
    level_ids = torch.tensor([LEVELS[name] for name in by_budget])
    device = next(model.parameters()).device
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(train), (prompts_per_step,), generator=generator)
        prompts = train.prompts[idx].clone()
        prompts[:, 1] = level_ids[torch.randint(0, len(level_ids), (prompts_per_step,), generator=generator)]
        prompts = prompts.repeat_interleave(cfg.group_size, 0)
        lengths = train.prompt_lengths[idx].repeat_interleave(cfg.group_size, 0)
        responses = sample(model, prompts, lengths, tokens, max_new_tokens, generator,
                           temperature=cfg.temperature, batch_size=len(prompts))
        rewards, response_lengths = reward(responses, train.answers[idx].repeat_interleave(cfg.group_size),
                                           prompts[:, 1])
        gen = Generation(tokens=_right_padded(prompts, lengths, responses, tokens.pad),
                         prompt_lengths=lengths, completion_lengths=response_lengths, pad_id=tokens.pad)
        stats = learner.update(gen, rewards, device)
        stats["mean_tokens"] = response_lengths.float().mean().item()
        if step % log_every == 0 or step == steps:
            log(f"tldr step {step}/{steps} reward {stats['reward']:.3f} tokens {stats['mean_tokens']:.1f} "
                f"zero-variance groups {stats['zero_variance_fraction']:.2f}")
            if on_log is not None:
                on_log(step, stats)


def _right_padded(prompts: torch.Tensor, lengths: torch.Tensor, responses: torch.Tensor, pad: int
                  ) -> torch.Tensor:
    """Rows prompt + response, right-padded (prompts are left-aligned with PAD after their length)."""
    full = torch.cat([prompts, responses], 1)
    keep = torch.cat([torch.arange(prompts.shape[1])[None, :] < lengths[:, None],
                      torch.ones_like(responses, dtype=torch.bool)], 1)
    order = torch.argsort((~keep).int(), dim=1, stable=True)
    return full.gather(1, order)
