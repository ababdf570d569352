"""Copying: read a sequence of distinct tokens, then reproduce it after a separator.

Example (BOS 0, SEP 1, data tokens 2..; copy length 4)::

    inputs  0 7 3 9 5 1 7 3 9
    labels  . . . . . 7 3 9 5

Tokens within a sequence are distinct, so "the token that followed the current one in the source" is
well defined: one CAT layer copies by matching the query (the token just emitted) against keys that
carry their predecessor (CAT, arXiv 2407.05591, Sec. 3). Length generalisation: the same task at
``length_multipliers`` x the copy length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from benchmarks.sequence import IGNORE, TokenSplit, score_tokens, test_split_name
from methods.core.api import Benchmark, Metric
from methods.core.seeding import numpy_rng

BOS, SEP, FIRST_DATA = 0, 1, 2


@dataclass
class CopyingArgs:
    vocab_size: int = 128
    copy_len: int = 16
    num_train: int = 10000
    num_test: int = 500
    length_multipliers: list[int] = field(default_factory=lambda: [1, 2, 4])


def generate(n: int, vocab_size: int, copy_len: int, rng: np.random.Generator) -> TokenSplit:
    if copy_len > vocab_size - FIRST_DATA:
        raise ValueError(f"copy_len {copy_len} needs at least {copy_len + FIRST_DATA} tokens; "
                         f"vocab is {vocab_size}")
    data = rng.random((n, vocab_size - FIRST_DATA)).argsort(1)[:, :copy_len] + FIRST_DATA
    seq = np.concatenate([np.full((n, 1), BOS), data, np.full((n, 1), SEP), data], axis=1)
    labels = seq[:, 1:].copy()
    labels[:, : copy_len + 1] = IGNORE  # the source and the separator are given, not predicted
    return TokenSplit(torch.from_numpy(seq[:, :-1].copy()), torch.from_numpy(labels))


def load(args: CopyingArgs, seed: int) -> dict[str, TokenSplit]:
    rng = numpy_rng(seed)
    splits = {"train": generate(args.num_train, args.vocab_size, args.copy_len, rng)}
    for m in args.length_multipliers:
        splits[test_split_name(m)] = generate(args.num_test, args.vocab_size, args.copy_len * m, rng)
    return splits


BENCHMARK = Benchmark(
    name="copying",
    doc=__doc__ or "",
    data_args=CopyingArgs,
    load=load,
    score=score_tokens,
    metrics=(Metric("accuracy", True, "share of copied tokens right"),
             Metric("sequence_accuracy", True, "share of sequences copied exactly")),
)
