"""Verbose multi-step sums: a reasoning task whose SFT traces think longer than they need to.

A problem asks for ``start + K * add`` modulo ``modulus``, worked out one addition at a time (K, the
number of steps, varies: the problem's difficulty). Its distilled-style SFT traces (what TLDR, arXiv
2505.07961, observes after SFT) do every step, but also re-check redundantly: a ``WAIT`` re-check (a
repeat of the latest step) may follow any step, and after the last step the trace keeps re-checking,
stopping with probability ``stop_prob`` at each chance, before the end-of-thinking token ``</think>``.
Worked example (K = 3 steps, start 4, add 7)::

    prompt    <bos> <any> S3 start:4 add:7 <think>
    response  S1 1  S2 8  WAIT S2 8  S3 5  WAIT S3 5  WAIT S3 5  </think> 5 <eos>
              |--- needed (steps) ---|------ redundant re-checks ------|

The shortest correct response is ``2K + 3`` tokens; the verbose ones have on average
``mid_check_prob * 3 (K - 1) + 3 (1 - stop_prob) / stop_prob`` more (mostly after the answer is
already fixed: with the defaults 3.6 tokens mid-computation on average, 9 in the tail). Every step is a chance to err,
so longer problems need longer traces and fail more often: wrong answers are longer, as in the paper.
A level token (``<any> <short> <medium> <long>``) sits in the prompt. By default SFT traces ignore it;
with ``level_stop_probs`` the tail's stop probability depends on it (loose instruction following, like a
distilled model that reads "think briefly" but misses any budget): the SFT model's levels are then
ordered but far from TLDR's budgets, and putting each level on its budget is what TLDR's RL adds.

Scoring parses a response: the answer is the token right after the first ``</think>``; a response
that never ends thinking (hits the length limit) is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.token_use import token_use_metric_docs, token_use_metrics
from methods.core.api import Benchmark
from methods.core.seeding import numpy_rng

PAD, BOS, THINK, END_THINK, EOS, WAIT = 0, 1, 2, 3, 4, 5
LEVELS = {"any": 6, "short": 7, "medium": 8, "long": 9}
DIGIT0 = 10  # value tokens 0-9
STEP0 = 20  # S1 = 20, S2 = 21, ...


@dataclass
class VerboseSumArgs:
    min_steps: int = 2
    max_steps: int = 8
    modulus: int = 10  # operands and running sums are digits below this
    mid_check_prob: float = 0.3  # chance of a redundant re-check after each intermediate step
    stop_prob: float = 0.25  # after the last step: chance to end thinking at each opportunity
    # Optional weak instruction-following in the SFT traces: the tail's stop probability per level token
    # ({"short": p, "medium": p, "long": p}; "any" and unlisted levels use stop_prob). None: the level
    # token does not change a trace's length at all.
    level_stop_probs: dict | None = None
    max_tail_checks: int = 12  # cap on re-checks after the last step
    num_train: int = 20000
    num_val: int = 400
    num_test: int = 1000


@dataclass
class Vocab:
    """Token ids of the task; computed from the largest problem size."""

    max_steps: int

    @property
    def start0(self) -> int:
        return STEP0 + self.max_steps

    @property
    def add0(self) -> int:
        return self.start0 + 10

    @property
    def size(self) -> int:
        return self.add0 + 10

    def names(self) -> list[str]:
        """Printable name of every token id (for samples.jsonl and a word-level tokenizer)."""
        return ["<pad>", "<bos>", "<think>", "</think>", "<eos>", "WAIT", "<any>", "<short>", "<medium>",
                "<long>", *[str(d) for d in range(10)], *[f"S{i}" for i in range(1, self.max_steps + 1)],
                *[f"start:{d}" for d in range(10)], *[f"add:{d}" for d in range(10)]]


@dataclass
class Split:
    """Prompts (left-aligned, PAD after), their answers and step counts; SFT targets on train only."""

    prompts: torch.Tensor  # (n, max_prompt) token ids
    prompt_lengths: torch.Tensor  # (n,)
    answers: torch.Tensor  # (n,) value 0-9
    steps: torch.Tensor  # (n,) K, the problem's difficulty
    responses: torch.Tensor | None = None  # (n, max_response) SFT trace + answer + EOS, PAD after
    vocab: Vocab | None = None
    partial: np.ndarray | None = None  # (n, max_steps) running values, for building traces

    def __len__(self) -> int:
        return self.prompts.shape[0]

    def with_level(self, level: str) -> Split:
        """The same problems asked at another length level."""
        if level not in LEVELS:
            raise ValueError(f"unknown level '{level}'; known: {', '.join(LEVELS)}")
        prompts = self.prompts.clone()
        prompts[:, 1] = LEVELS[level]
        return Split(prompts, self.prompt_lengths, self.answers, self.steps, self.responses, self.vocab,
                     self.partial)

    def subset(self, n: int) -> Split:
        return Split(self.prompts[:n], self.prompt_lengths[:n], self.answers[:n], self.steps[:n],
                     None if self.responses is None else self.responses[:n], self.vocab,
                     None if self.partial is None else self.partial[:n])


def make_problems(n: int, args: VerboseSumArgs, rng: np.random.Generator, levels: str | None) -> Split:
    """``n`` problems; ``levels=None`` draws a random level token per prompt (as SFT data does)."""
    if not 1 <= args.min_steps <= args.max_steps:
        raise ValueError(f"need 1 <= min_steps <= max_steps, got {args.min_steps}, {args.max_steps}")
    if not 2 <= args.modulus <= 10:
        raise ValueError(f"modulus must be in 2..10, got {args.modulus}")
    vocab = Vocab(args.max_steps)
    steps = rng.integers(args.min_steps, args.max_steps + 1, size=n)
    start = rng.integers(0, args.modulus, size=n)
    add = rng.integers(1, args.modulus, size=n)
    partial = (start[:, None] + add[:, None] * np.arange(1, args.max_steps + 1)[None, :]) % args.modulus
    answers = partial[np.arange(n), steps - 1]
    level_ids = np.array(list(LEVELS.values()))
    level = rng.choice(level_ids, size=n) if levels is None else np.full(n, LEVELS[levels])
    prompts = np.stack([np.full(n, BOS), level, STEP0 + steps - 1, vocab.start0 + start, vocab.add0 + add,
                        np.full(n, THINK)], 1)
    return Split(torch.from_numpy(prompts), torch.full((n,), prompts.shape[1]), torch.from_numpy(answers),
                 torch.from_numpy(steps), vocab=vocab, partial=partial)


def verbose_traces(split: Split, args: VerboseSumArgs, rng: np.random.Generator) -> torch.Tensor:
    """SFT responses: every step, random redundant re-checks, a geometric tail of them, then the answer.

    A step names its index and writes the running value (``S_i v_i``); a re-check repeats the latest
    step (``WAIT S_i v_i``), as a distilled model's "wait, let me double-check" does. Vectorised by
    laying each response out in 3-token slots (a step is padded to 3) and compacting the pad out.
    """
    if split.partial is None:
        raise ValueError("traces need the split's running values (make_problems keeps them)")
    n, k_max = len(split), args.max_steps
    steps = split.steps.numpy()
    index = np.arange(1, k_max + 1)
    present = index[None, :] <= steps[:, None]
    step_ids = np.broadcast_to(STEP0 + index - 1, (n, k_max))
    values = DIGIT0 + split.partial
    step_slots = np.stack([step_ids, values, np.full((n, k_max), PAD)], -1)
    step_slots[~present] = PAD
    mid = (rng.random((n, k_max)) < args.mid_check_prob) & (index[None, :] < steps[:, None])
    check_slots = np.stack([np.full((n, k_max), WAIT), step_ids, values], -1)
    check_slots[~mid] = PAD
    body = np.stack([step_slots, check_slots], 2).reshape(n, -1)  # (n, 6 k_max)
    # Tail: re-check the last step until the trace stops (geometric, capped).
    stop = np.full(n, args.stop_prob)
    for name, prob in (args.level_stop_probs or {}).items():
        if name not in LEVELS or not 0 < float(prob) <= 1:
            raise ValueError(f"level_stop_probs: need a level in {', '.join(LEVELS)} and 0 < p <= 1, "
                             f"got {name}: {prob}")
        stop[split.prompts[:, 1].numpy() == LEVELS[name]] = float(prob)
    tail_n = np.minimum(rng.geometric(stop) - 1, args.max_tail_checks)
    rows = np.arange(n)
    last = np.stack([np.full(n, WAIT), step_ids[rows, steps - 1], values[rows, steps - 1]], -1)
    tail = np.repeat(last[:, None, :], args.max_tail_checks, 1)
    tail[np.arange(args.max_tail_checks)[None, :] >= tail_n[:, None]] = PAD
    end = np.stack([np.full(n, END_THINK), DIGIT0 + split.answers.numpy(), np.full(n, EOS)], -1)
    full = np.concatenate([body, tail.reshape(n, -1), end], 1)
    order = np.argsort(full == PAD, axis=1, kind="stable")  # stable: PADs to the end, order kept
    compact = np.take_along_axis(full, order, 1)
    width = int((compact != PAD).sum(1).max())
    return torch.from_numpy(compact[:, :width].copy())


def load(args: VerboseSumArgs, seed: int) -> dict[str, Split]:
    """Splits: train (with verbose SFT responses, random level tokens), val and test (level ``<any>``)."""
    rng = numpy_rng(seed)
    train = make_problems(args.num_train, args, rng, levels=None)
    train.responses = verbose_traces(train, args, rng)
    return {"train": train, "val": make_problems(args.num_val, args, rng, "any"),
            "test": make_problems(args.num_test, args, rng, "any")}


def parse_responses(responses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(n, L) generated tokens -> (answer digit or -1, response length in tokens, ended thinking)."""
    n, width = responses.shape
    is_end = responses == END_THINK
    ended = is_end.any(1)
    first_end = torch.where(ended, is_end.int().argmax(1), torch.full((n,), width))
    after = responses.gather(1, (first_end + 1).clamp(max=width - 1)[:, None]).squeeze(1)
    valid = ended & (first_end + 1 < width) & (after >= DIGIT0) & (after < DIGIT0 + 10)
    answer = torch.where(valid, after - DIGIT0, torch.full_like(after, -1))
    is_eos = responses == EOS
    length = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, (responses != PAD).sum(1))
    return answer, length, ended


def score(responses: torch.Tensor, split: Split) -> dict[str, float]:
    """Accuracy and token use of generated responses (the tokens after the prompt, PAD after the end)."""
    if responses.shape[0] != len(split):
        raise ValueError(f"{responses.shape[0]} responses for {len(split)} problems")
    answer, length, ended = parse_responses(responses)
    return token_use_metrics(answer == split.answers, length, ended)


def minimal_tokens(split: Split) -> torch.Tensor:
    """Length of the shortest correct response per problem: K steps of 2 tokens, then </think> a <eos>."""
    return 2 * split.steps + 3


BENCHMARK = Benchmark(
    name="verbose_sum",
    doc=__doc__ or "",
    data_args=VerboseSumArgs,
    load=load,
    score=score,
    metrics=token_use_metric_docs("share of problems answered right"),
)
