"""Passkey retrieval: find a short number hidden in a long, repetitive haystack and repeat it.

Example (BOS 0, PASS 1, QUERY 2, digits 3..12, filler pattern 13 14 15 ...; 3 digits)::

    inputs  0 13 14 15 13 1 5 9 4 14 15 13 14 2 5 9
    labels  .  .  .  .  . . . . .  .  .  .  . 5 9 4

The filler repeats one fixed phrase (as in Mohtashami & Jaggi, arXiv 2305.16300, used by SSA,
arXiv 2411.12892, Sec. 5), so everything but the passkey is predictable and the answer must be
retrieved from far back. ``passkey_accuracy`` is the share of sequences with every digit right.
Length generalisation: the haystack at ``length_multipliers`` x the training length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from benchmarks.sequence import IGNORE, TokenSplit, token_accuracy
from methods.core.api import Benchmark, Metric
from methods.core.seeding import numpy_rng

BOS, PASS, QUERY, FIRST_DIGIT, N_DIGITS_VOCAB = 0, 1, 2, 3, 10
FIRST_FILLER = FIRST_DIGIT + N_DIGITS_VOCAB


@dataclass
class PasskeyArgs:
    haystack_len: int = 64
    num_digits: int = 4
    filler_period: int = 7  # the repeated phrase is this many filler tokens
    num_train: int = 10000
    num_test: int = 500
    num_val: int = 0  # > 0 adds a "val" split at the training length (for choosing hyperparameters)
    length_multipliers: list[int] = field(default_factory=lambda: [1, 2, 4])

    @property
    def vocab_size(self) -> int:
        return FIRST_FILLER + self.filler_period


def generate(n: int, args: PasskeyArgs, haystack_len: int, rng: np.random.Generator) -> TokenSplit:
    d = args.num_digits
    if haystack_len < 1:
        raise ValueError(f"haystack_len must be >= 1, got {haystack_len}")
    phase = rng.integers(0, args.filler_period, size=(n, 1))
    hay = FIRST_FILLER + (phase + np.arange(haystack_len)[None, :]) % args.filler_period
    digits = rng.integers(0, N_DIGITS_VOCAB, size=(n, d)) + FIRST_DIGIT
    needle = np.concatenate([np.full((n, 1), PASS), digits], axis=1)  # (n, d + 1)
    depth = rng.integers(0, haystack_len + 1, size=n)  # insert before haystack position `depth`
    body_len = haystack_len + d + 1
    cols = np.arange(body_len)[None, :]
    rel = cols - depth[:, None]
    in_needle = (rel >= 0) & (rel <= d)
    hay_index = np.where(rel < 0, cols, cols - d - 1).clip(0, haystack_len - 1)
    body = np.where(in_needle, np.take_along_axis(needle, rel.clip(0, d), axis=1),
                    np.take_along_axis(hay, hay_index, axis=1))
    seq = np.concatenate([np.full((n, 1), BOS), body, np.full((n, 1), QUERY), digits], axis=1)
    labels = np.full_like(seq, IGNORE)
    labels[:, -d:] = digits
    return TokenSplit(torch.from_numpy(seq[:, :-1].copy()), torch.from_numpy(labels[:, 1:].copy()))


def load(args: PasskeyArgs, seed: int) -> dict[str, TokenSplit]:
    rng = numpy_rng(seed)
    splits = {"train": generate(args.num_train, args, args.haystack_len, rng)}
    for m in args.length_multipliers:
        splits["test" if m == 1 else f"test_{m}x"] = generate(args.num_test, args, args.haystack_len * m, rng)
    if args.num_val > 0:  # drawn last from the same stream: train and test data do not depend on it
        splits["val"] = generate(args.num_val, args, args.haystack_len, rng)
    return splits


def score(predictions: torch.Tensor, split: TokenSplit) -> dict[str, float]:
    acc = token_accuracy(predictions, split.labels)
    return {"digit_accuracy": acc["accuracy"], "passkey_accuracy": acc["sequence_accuracy"]}


BENCHMARK = Benchmark(
    name="passkey",
    doc=__doc__ or "",
    data_args=PasskeyArgs,
    load=load,
    score=score,
    metrics=(Metric("passkey_accuracy", True, "share of passkeys retrieved exactly"),
             Metric("digit_accuracy", True, "share of passkey digits right")),
)
