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

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from benchmarks.verbose_sum import LEVELS, Split, parse_responses
from methods.core.training import cosine_schedule
from methods.rl import Generation, GRPOConfig, GRPOLearner
from methods.tldr.generation import SpecialTokens, TorchStopSampler


def length_regularised_reward(correct: torch.Tensor, length: torch.Tensor, budget: torch.Tensor, alpha: float,
                              penalty: str = "distance") -> torch.Tensor:
    """``1[correct] - alpha * |L - B| / B`` (distance) or ``... * max(0, L - B) / B`` (over), per row."""
    if penalty not in ("distance", "over"):
        raise ValueError(f"penalty must be 'distance' or 'over', got {penalty!r}")
    excess = length.float() - budget
    excess = excess.abs() if penalty == "distance" else excess.clamp(min=0)
    return correct.float() - alpha * excess / budget


@dataclass
class LengthReward:
    """Correctness minus the length penalty of each response's level (the verbose-sum task)."""

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
        rewards = length_regularised_reward(answer == answers, length, self.budget_of(level_ids), self.alpha,
                                            self.penalty)
        return rewards, length


# (prompts, lengths, max_new_tokens, generator, temperature=) -> responses (N, max_new_tokens): the torch
# sampler (generation.TorchStopSampler) or vLLM (vllm_stop.VLLMStopSampler).
StopSampler = Callable[..., torch.Tensor]
# One GRPO step's prompts: (prompts (P, W) left-aligned, prompt lengths (P,), level budgets (P,), references
# (P,) problem indices the judge understands).
Draw = Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
# (responses (N, T), reference per row (N,)) -> (correct (N,) float, response length in tokens (N,)).
Judge = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def train_length_grpo(model: PreTrainedModel, draw: Draw, judge: Judge, alpha: float, penalty: str,
                      cfg: GRPOConfig, steps: int, max_new_tokens: int, tokens: SpecialTokens,
                      generator: torch.Generator, log: Callable[[str], None], log_every: int = 10,
                      on_log: Callable[[int, dict[str, float]], None] | None = None,
                      warmup: float | None = None, rollouts: StopSampler | None = None) -> None:
    """TLDR's RL loop, task-agnostic: draw prompts, sample ``group_size`` responses each, reward correctness
    minus the length penalty, one GRPO update (the shared engine).

    ``rollouts``: the sampler (default: the KV-cached torch sampler on ``model``); one with ``sync_weights``
    (vLLM) gets the policy's weights after every update, so each step samples from the current policy.
    """
    # beta > 0: a frozen copy of the starting (SFT) policy anchors the update with the engine's KL term,
    # so the length signal moves the stopping decision without dragging the computation steps along.
    reference = copy.deepcopy(model).eval().requires_grad_(False) if cfg.beta != 0.0 else None
    learner = GRPOLearner(model, cfg, ref_model=reference)
    # Warm-up then cosine decay of the RL learning rate (the shared schedule of methods/core/training): the
    # first Adam steps move every weight by about lr, and the decay lets the policy settle before evaluation.
    schedule = cosine_schedule(learner.optimizer, steps, warmup) if warmup is not None else None
    device = next(model.parameters()).device
    rollouts = rollouts or TorchStopSampler(model, tokens, batch_size=None)  # one batch per step
    sync = getattr(rollouts, "sync_weights", None)
    for step in range(1, steps + 1):
        prompts, lengths, budgets, refs = draw()
        prompts = prompts.repeat_interleave(cfg.group_size, 0)
        lengths = lengths.repeat_interleave(cfg.group_size, 0)
        responses = rollouts(prompts, lengths, max_new_tokens, generator, temperature=cfg.temperature)
        correct, response_lengths = judge(responses, refs.repeat_interleave(cfg.group_size))
        rewards = length_regularised_reward(correct, response_lengths,
                                            budgets.float().repeat_interleave(cfg.group_size), alpha, penalty)
        gen = Generation(tokens=_right_padded(prompts, lengths, responses, tokens.pad),
                         prompt_lengths=lengths, completion_lengths=response_lengths, pad_id=tokens.pad)
        stats = learner.update(gen, rewards, device)
        if sync is not None:
            sync(model)
        if schedule is not None:
            schedule.step()
        stats["mean_tokens"] = response_lengths.float().mean().item()
        stats["accuracy"] = correct.float().mean().item()
        if step % log_every == 0 or step == steps:
            log(f"tldr step {step}/{steps} reward {stats['reward']:.3f} accuracy {stats['accuracy']:.2f} "
                f"tokens {stats['mean_tokens']:.1f} zero-variance groups {stats['zero_variance_fraction']:.2f}")
            if on_log is not None:
                on_log(step, stats)


def level_batch(train: Split, level_ids: torch.Tensor, prompts_per_step: int, paired: bool,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Problem indices and prompts (level token set) for one GRPO step.

    ``paired``: each drawn problem is asked at every level (``prompts_per_step`` must be a multiple of
    the number of levels). The levels' groups then share their problems, so in the batch gradient the
    level-independent part of "shorter/longer" cancels and what remains is how length should depend on
    the level token: the conditioning the SFT model lacks. Otherwise each prompt gets a random level.
    """
    n_levels = len(level_ids)
    if paired:
        if prompts_per_step % n_levels:
            raise ValueError(f"paired levels need prompts_per_step ({prompts_per_step}) to be a multiple of "
                             f"the number of levels ({n_levels})")
        idx = torch.randint(0, len(train), (prompts_per_step // n_levels,), generator=generator)
        idx = idx.repeat_interleave(n_levels)
        levels = level_ids.repeat(prompts_per_step // n_levels)
    else:
        idx = torch.randint(0, len(train), (prompts_per_step,), generator=generator)
        levels = level_ids[torch.randint(0, n_levels, (prompts_per_step,), generator=generator)]
    prompts = train.prompts[idx].clone()
    prompts[:, 1] = levels
    return idx, prompts


def train_tldr(model: PreTrainedModel, train: Split, reward: LengthReward, cfg: GRPOConfig, steps: int,
               prompts_per_step: int, max_new_tokens: int, tokens: SpecialTokens, generator: torch.Generator,
               log: Callable[[str], None], log_every: int = 10,
               on_log: Callable[[int, dict[str, float]], None] | None = None, paired_levels: bool = True,
               warmup: float | None = None) -> None:
    """TLDR on the verbose-sum task: prompts at the levels (see ``level_batch``), the answer token judged."""
    by_budget = sorted(reward.budgets, key=reward.budgets.__getitem__)  # not the config key order
    level_ids = torch.tensor([LEVELS[name] for name in by_budget])

    def draw() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        idx, prompts = level_batch(train, level_ids, prompts_per_step, paired_levels, generator)
        return prompts, train.prompt_lengths[idx], reward.budget_of(prompts[:, 1]), idx

    def judge(responses: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        answer, length, _ = parse_responses(responses)
        return (answer == train.answers[idx]).float(), length

    train_length_grpo(model, draw, judge, reward.alpha, reward.penalty, cfg, steps, max_new_tokens, tokens,
                      generator, log, log_every, on_log, warmup)


def _right_padded(prompts: torch.Tensor, lengths: torch.Tensor, responses: torch.Tensor, pad: int
                  ) -> torch.Tensor:
    """Rows prompt + response, right-padded (prompts are left-aligned with PAD after their length)."""
    full = torch.cat([prompts, responses], 1)
    keep = torch.cat([torch.arange(prompts.shape[1])[None, :] < lengths[:, None],
                      torch.ones_like(responses, dtype=torch.bool)], 1)
    order = torch.argsort((~keep).int(), dim=1, stable=True)
    return full.gather(1, order)
