"""BREAD's branched rollouts (arXiv 2506.17211, Alg. 1): when every rollout of a group fails, the student
restarts from a prefix of the expert trace (its first j episodes) and completes the rest; the search over
episode boundaries keeps the shortest prefix that yields a success, so every group the update sees has at
least one successful trace. No official code exists; this follows the paper's description.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from methods.rl.generation import Generation, Sampler, right_pad

# (generation, problem ids per row, expert episodes already in each row's prompt) -> rewards (rows,)
BranchReward = Callable[[Generation, torch.Tensor], torch.Tensor]


@dataclass
class BranchResult:
    generation: Generation  # group_size rows per branched group, grouped consecutively
    rewards: torch.Tensor
    problem_ids: torch.Tensor
    prefix_episodes: torch.Tensor  # (groups,) expert episodes given to each group
    expert_rows: int  # groups where no probed prefix succeeded and the expert's last episode was inserted


def concat_generations(parts: Sequence[Generation]) -> Generation:
    """Stack generations of different widths into one right-padded batch."""
    width = max(p.tokens.shape[1] for p in parts)
    pad = parts[0].pad_id
    tokens = torch.cat([torch.nn.functional.pad(p.tokens, (0, width - p.tokens.shape[1]), value=pad)
                        for p in parts])
    return Generation(tokens, torch.cat([p.prompt_lengths for p in parts]),
                      torch.cat([p.completion_lengths for p in parts]), pad)


def _prefix_tokens(episode_ends: Sequence[torch.Tensor] | None, pid: int, j: int) -> int:
    """Expert tokens in the first j episodes: j (one token per episode) or ``episode_ends[pid][j]``."""
    return j if episode_ends is None else int(episode_ends[pid][j])


def _sample_at(sampler: Sampler, prompts: Sequence[torch.Tensor], traces: Sequence[torch.Tensor],
               problem_ids: torch.Tensor, prefix: torch.Tensor, group_size: int, slack: int,
               temperature: float, generator: torch.Generator,
               episode_ends: Sequence[torch.Tensor] | None = None) -> Generation:
    """group_size completions per (problem, prefix length j): prompt + first j expert episodes."""
    rows, budgets = [], []
    for pid, j in zip(problem_ids.tolist(), prefix.tolist(), strict=True):
        cut = _prefix_tokens(episode_ends, pid, j)
        row = torch.cat([prompts[pid], traces[pid][:cut]])
        rows += [row] * group_size
        budgets += [traces[pid].numel() - cut + slack] * group_size
    return sampler.sample(rows, torch.tensor(budgets), temperature=temperature, generator=generator)


def branch_failed_groups(sampler: Sampler, prompts: Sequence[torch.Tensor], traces: Sequence[torch.Tensor],
                         episodes: torch.Tensor, failed_ids: torch.Tensor, reward_fn: BranchReward,
                         group_size: int, temperature: float, generator: torch.Generator,
                         slack: int = 1, episode_ends: Sequence[torch.Tensor] | None = None) -> BranchResult:
    """Binary search, batched over all failed groups, for the shortest expert prefix with a success.

    ``traces[pid]``: the expert completion, one token per episode then EOS; ``episodes[pid]``: its number
    of episodes. Prefixes run from 1 to episodes-1 (the student always writes at least the final answer).
    Groups that fail at every probed prefix get the longest prefix and one row replaced by the expert's
    own last episode, so each group still has one success (the paper's guarantee).
    ``episode_ends[pid]`` (paper profile: multi-token episodes of a written solution): (episodes+1,) token
    counts after 0..episodes episodes, so prefix j is ``traces[pid][:episode_ends[pid][j]]``; ``slack`` is
    then the extra generation budget in tokens. None: one token per episode (the chain benchmark).
    """
    n = failed_ids.numel()
    lo = torch.ones(n, dtype=torch.long)
    hi = (episodes[failed_ids] - 1).clamp(min=1)
    best_j = torch.full((n,), -1, dtype=torch.long)
    best: dict[int, tuple[Generation, torch.Tensor]] = {}
    while True:
        active = torch.nonzero(lo <= hi).squeeze(1)
        if active.numel() == 0:
            break
        mid = (lo[active] + hi[active]) // 2
        gen = _sample_at(sampler, prompts, traces, failed_ids[active], mid, group_size, slack, temperature,
                         generator, episode_ends)
        rew = reward_fn(gen, failed_ids[active].repeat_interleave(group_size)).view(-1, group_size)
        success = rew.max(1).values > 0
        for k, g in enumerate(active.tolist()):
            rows = slice(k * group_size, (k + 1) * group_size)
            if success[k]:
                best_j[g] = mid[k]
                best[g] = (_rows(gen, rows), rew[k])
                hi[g] = mid[k] - 1
            else:
                lo[g] = mid[k] + 1
    fallback = torch.nonzero(best_j < 0).squeeze(1)
    if fallback.numel():
        j = (episodes[failed_ids[fallback]] - 1).clamp(min=0)
        gen = _sample_at(sampler, prompts, traces, failed_ids[fallback], j, group_size, slack, temperature,
                         generator, episode_ends)
        rew = reward_fn(gen, failed_ids[fallback].repeat_interleave(group_size)).view(-1, group_size)
        for k, g in enumerate(fallback.tolist()):
            part, r = _rows(gen, slice(k * group_size, (k + 1) * group_size)), rew[k].clone()
            if r.max() == 0:  # insert the expert's own final episode as the one successful trace
                pid = int(failed_ids[g])
                part = _replace_first(part, torch.cat([prompts[pid], traces[pid]]), prompts[pid].numel()
                                      + _prefix_tokens(episode_ends, pid, int(j[k])))
                r[0] = 1.0
                best_j[g] = episodes[pid]  # the whole trace was used
            else:
                best_j[g] = j[k]
            best[g] = (part, r)
    order = list(range(n))
    generation = concat_generations([best[g][0] for g in order])
    return BranchResult(generation, torch.cat([best[g][1] for g in order]),
                        failed_ids.repeat_interleave(group_size), best_j,
                        int((best_j == episodes[failed_ids]).sum().item()))


def _rows(gen: Generation, rows: slice) -> Generation:
    return Generation(gen.tokens[rows], gen.prompt_lengths[rows], gen.completion_lengths[rows], gen.pad_id)


def _replace_first(gen: Generation, full_row: torch.Tensor, prompt_length: int) -> Generation:
    width = max(gen.tokens.shape[1], full_row.numel())
    tokens = torch.nn.functional.pad(gen.tokens, (0, width - gen.tokens.shape[1]), value=gen.pad_id)
    tokens[0] = right_pad([full_row], gen.pad_id, width)[0]
    prompt_lengths, completion_lengths = gen.prompt_lengths.clone(), gen.completion_lengths.clone()
    prompt_lengths[0], completion_lengths[0] = prompt_length, full_row.numel() - prompt_length
    return Generation(tokens, prompt_lengths, completion_lengths, gen.pad_id)
