"""N-gram associative recall: keys are n-grams, so a key is found only by matching n tokens in order.

Example (n = 2; key tokens a..d, values V1..; 3 pairs, then each key queried once)::

    inputs  a b V1 b a V2 a c V3 | b a V2 a c V3 a b
    labels  . . .  . .  . . .  . | . V2 .  . V3 .  . V1

Key tokens come from a small pool, so single tokens repeat across keys and unigram matching fails;
CAT's convolution over the last n tokens forms the n-gram key (CAT, arXiv 2407.05591, Sec. 3, N-gram
AR). Length generalisation: ``length_multipliers`` x the number of pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from benchmarks.sequence import IGNORE, TokenSplit, score_tokens, test_split_name
from methods.core.api import Benchmark, Metric
from methods.core.seeding import numpy_rng


@dataclass
class NgramRecallArgs:
    vocab_size: int = 128
    n: int = 2
    key_pool: int = 8  # distinct key tokens; key_pool ** n possible keys
    num_kv_pairs: int = 8
    num_train: int = 10000
    num_test: int = 500
    length_multipliers: list[int] = field(default_factory=lambda: [1, 2, 4])


def generate(n_rows: int, args: NgramRecallArgs, num_kv: int, rng: np.random.Generator) -> TokenSplit:
    n, pool = args.n, args.key_pool
    value_vocab = args.vocab_size - pool - 1
    if num_kv > pool**n or num_kv > value_vocab:
        raise ValueError(f"{num_kv} pairs need <= {pool}**{n} keys and <= {value_vocab} values")
    codes = rng.random((n_rows, pool**n)).argsort(1)[:, :num_kv]  # distinct n-grams as base-pool numbers
    digits = (codes[..., None] // pool ** np.arange(n - 1, -1, -1)) % pool + 1  # (rows, kv, n)
    values = rng.random((n_rows, value_vocab)).argsort(1)[:, :num_kv] + pool + 1
    context = np.concatenate([digits, values[..., None]], axis=2)  # (rows, kv, n + 1)
    order = rng.random((n_rows, num_kv)).argsort(1)
    queries = np.take_along_axis(context, order[..., None], axis=1)
    seq = np.concatenate([context.reshape(n_rows, -1), queries.reshape(n_rows, -1)], axis=1)
    labels = np.full_like(seq, IGNORE)
    q_value_pos = num_kv * (n + 1) + np.arange(num_kv) * (n + 1) + n
    labels[:, q_value_pos] = seq[:, q_value_pos]
    return TokenSplit(torch.from_numpy(seq[:, :-1].copy()), torch.from_numpy(labels[:, 1:].copy()))


def load(args: NgramRecallArgs, seed: int) -> dict[str, TokenSplit]:
    rng = numpy_rng(seed)
    splits = {"train": generate(args.num_train, args, args.num_kv_pairs, rng)}
    for m in args.length_multipliers:
        splits[test_split_name(m)] = generate(args.num_test, args, args.num_kv_pairs * m, rng)
    return splits


BENCHMARK = Benchmark(
    name="ngram_recall",
    doc=__doc__ or "",
    data_args=NgramRecallArgs,
    load=load,
    score=score_tokens,
    metrics=(Metric("accuracy", True, "share of queried values recalled"),
             Metric("sequence_accuracy", True, "share of sequences with every query right")),
)
