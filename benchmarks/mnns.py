"""Minimum non-negative sum (MNNS), CoT2's search task (arXiv 2505.23648, Sec. 4; official generate_data.py).

Given digits d_1..d_L, choose signs so that the final sum s_L = sum_i +-d_i is the smallest value >= 0.
The chain of thought is the sequence of partial sums s_1..s_{L-1}; the answer is s_L. Example (L = 4)::

    prompt  <BOS> D3 D1 D4 D2 ->
    trace   S3 S4 S0            (signs + + - ..., the first optimal sign pattern)
    answer  S2                  (3 + 1 - 4 + 2 = 2; no pattern gives 0 or 1)

CSFT target at step t: the empirical distribution of s_t over all 2^L sign patterns (each pattern one
trace; duplicates accumulate), as in the official ``uniform`` strategy. ``traces`` keeps all patterns
ranked (valid, i.e. final sum >= 0, first by final sum) for top-B beam targets.
The train/test split keeps all permutations of a digit multiset on one side (official
``random_permutation`` split), so the test set needs generalisation, not memorised permutations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.reasoning import METRICS, ReasoningSplit, score
from methods.core.api import Benchmark
from methods.core.seeding import numpy_rng

SPECIALS = ["<PAD>", "<BOS>", "->", "<EOS>"]


@dataclass
class MNNSArgs:
    num_digits: int = 4  # L; the chain of thought has L - 1 steps
    digit_low: int = 1
    digit_high: int = 9  # inclusive (official: range(1, 10))
    train_fraction: float = 0.8  # of digit multisets
    max_examples: int = 0  # > 0: subsample all L-tuples to this many (long L); 0 keeps all


def vocabulary(args: MNNSArgs) -> list[str]:
    bound = args.num_digits * args.digit_high
    return [*SPECIALS, *(f"D{d}" for d in range(0, args.digit_high + 1)),
            *(f"S{s}" for s in range(-bound, bound + 1))]


def _check(args: MNNSArgs) -> None:
    if args.num_digits < 2:
        raise ValueError(f"mnns: num_digits must be >= 2 (one CoT step at least), got {args.num_digits}")
    if not 0 <= args.digit_low <= args.digit_high:
        raise ValueError(f"mnns: need 0 <= digit_low <= digit_high, got {args.digit_low}..{args.digit_high}")
    if not 0 < args.train_fraction < 1:
        raise ValueError(f"mnns: train_fraction must be in (0, 1), got {args.train_fraction}")


def build(args: MNNSArgs, rng: np.random.Generator) -> tuple[ReasoningSplit, np.ndarray]:
    """All examples (vectorised) and each example's multiset group id."""
    _check(args)
    L = args.num_digits
    digits = np.arange(args.digit_low, args.digit_high + 1)
    grids = np.meshgrid(*([digits] * L), indexing="ij")
    seqs = np.stack([g.reshape(-1) for g in grids], axis=1)  # (n, L), itertools.product order
    if args.max_examples and len(seqs) > args.max_examples:
        seqs = seqs[np.sort(rng.choice(len(seqs), args.max_examples, replace=False))]
    n = len(seqs)
    # Sign patterns in itertools.product(["+", "-"]) order: pattern 0 is all plus.
    bits = (np.arange(2**L)[:, None] >> np.arange(L - 1, -1, -1)[None, :]) & 1
    signs = 1 - 2 * bits  # (M, L)
    partial = np.cumsum(seqs[:, None, :] * signs[None], axis=2)  # (n, M, L)
    final = partial[:, :, -1]
    best = np.where(final >= 0, final, np.iinfo(np.int64).max).min(1)  # all-plus is always >= 0
    first_best = np.argmax(final == best[:, None], axis=1)
    vocab = vocabulary(args)
    bound = L * args.digit_high
    sum_token = len(SPECIALS) + args.digit_high + 1 + bound  # token id of S0
    tokens = partial + sum_token  # (n, M, L)
    steps = L - 1
    targets = np.zeros((n, steps, len(vocab)), dtype=np.float32)
    rows = np.repeat(np.arange(n), 2**L)
    for t in range(steps):
        np.add.at(targets[:, t], (rows, tokens[:, :, t].reshape(-1)), 1.0 / 2**L)
    # Rank traces: valid (final >= 0) first, by final sum, ties by pattern order (official "beam").
    rank_key = np.where(final >= 0, final, 10 * bound + 1) * 2**L + np.arange(2**L)[None]
    order = np.argsort(rank_key, axis=1)
    ranked = np.take_along_axis(tokens[:, :, :steps], order[:, :, None], axis=1)
    prompt = np.concatenate([np.full((n, 1), SPECIALS.index("<BOS>")),
                             seqs + len(SPECIALS), np.full((n, 1), SPECIALS.index("->"))], axis=1)
    split = ReasoningSplit(
        prompt=torch.from_numpy(prompt).long(),
        step_targets=torch.from_numpy(targets),
        trace=torch.from_numpy(tokens[np.arange(n), first_best, :steps]).long(),
        answer=torch.from_numpy(best + sum_token).long(),
        vocab=vocab,
        traces=torch.from_numpy(ranked).long(),
        num_valid=torch.from_numpy((final >= 0).sum(1)).long(),
    )
    _, groups = np.unique(np.sort(seqs, axis=1), axis=0, return_inverse=True)
    return split, groups.reshape(-1)


def load(args: MNNSArgs, seed: int) -> dict[str, ReasoningSplit]:
    """train / test, split by digit multiset (all permutations of a multiset on one side)."""
    rng = numpy_rng(seed)
    split, groups = build(args, rng)
    perm = rng.permutation(groups.max() + 1)
    train_groups = perm[: int(args.train_fraction * len(perm))]
    in_train = torch.from_numpy(np.isin(groups, train_groups))
    return {"train": split.subset(in_train.nonzero().squeeze(1)),
            "test": split.subset((~in_train).nonzero().squeeze(1))}


BENCHMARK = Benchmark(
    name="mnns",
    doc=__doc__ or "",
    data_args=MNNSArgs,
    load=load,
    score=score,
    metrics=METRICS,
)
