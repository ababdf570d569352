"""Selective copying: copy the data tokens scattered among noise tokens, in order, after a separator.

Example (BOS 0, SEP 1, NOISE 2, data 3..; region 8, 3 data tokens)::

    inputs  0 2 9 2 2 4 2 7 2 1 9 4
    labels  . . . . . . . . . 9 4 7

The Mamba paper's content-aware variant of copying (Gu & Dao, arXiv 2312.00752, Sec. 3.1); the CAT
paper (arXiv 2407.05591) studies it with CAT vs attention vs Mamba. Length generalisation: the noisy
region grows by ``length_multipliers`` (same number of data tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from benchmarks.sequence import IGNORE, TokenSplit, score_tokens, test_split_name
from methods.core.api import Benchmark, Metric
from methods.core.seeding import numpy_rng

BOS, SEP, NOISE, FIRST_DATA = 0, 1, 2, 3


@dataclass
class SelectiveCopyingArgs:
    vocab_size: int = 64
    region_len: int = 32
    num_data: int = 8
    num_train: int = 10000
    num_test: int = 500
    length_multipliers: list[int] = field(default_factory=lambda: [1, 2, 4])


def generate(n: int, vocab_size: int, region_len: int, num_data: int, rng: np.random.Generator) -> TokenSplit:
    if num_data > region_len or num_data > vocab_size - FIRST_DATA:
        raise ValueError(f"num_data {num_data} must fit the region ({region_len}) and the data vocabulary "
                         f"({vocab_size - FIRST_DATA})")
    data = rng.random((n, vocab_size - FIRST_DATA)).argsort(1)[:, :num_data] + FIRST_DATA
    slots = np.sort(rng.random((n, region_len)).argsort(1)[:, :num_data], axis=1)
    region = np.full((n, region_len), NOISE)
    region[np.arange(n)[:, None], slots] = data
    seq = np.concatenate([np.full((n, 1), BOS), region, np.full((n, 1), SEP), data], axis=1)
    labels = seq[:, 1:].copy()
    labels[:, : region_len + 1] = IGNORE  # the region and the separator are given
    return TokenSplit(torch.from_numpy(seq[:, :-1].copy()), torch.from_numpy(labels))


def load(args: SelectiveCopyingArgs, seed: int) -> dict[str, TokenSplit]:
    rng = numpy_rng(seed)
    gen = dict(vocab_size=args.vocab_size, num_data=args.num_data, rng=rng)
    splits = {"train": generate(args.num_train, region_len=args.region_len, **gen)}
    for m in args.length_multipliers:
        splits[test_split_name(m)] = generate(args.num_test, region_len=args.region_len * m, **gen)
    return splits


BENCHMARK = Benchmark(
    name="selective_copying",
    doc=__doc__ or "",
    data_args=SelectiveCopyingArgs,
    load=load,
    score=score_tokens,
    metrics=(Metric("accuracy", True, "share of data tokens reproduced"),
             Metric("sequence_accuracy", True, "share of sequences reproduced exactly")),
)
