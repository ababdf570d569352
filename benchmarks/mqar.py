"""Multi-query associative recall (MQAR), as zoology defines it (Arora et al., arXiv 2312.04927).

Example (vocab 16: keys 1-7, values 8-15; 2 pairs; length 12)::

    inputs  3 9  5 12 | 7 3 1 4 5 2 6 0
    labels  . .  .  . | . 9 . . 12 . . .

The context lists key-value pairs; later, each key is queried once at a power-law distributed gap and
the label at the query is its value. Other positions are random filler and unscored.
Length generalisation: the same task at ``length_multipliers`` x the training length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from benchmarks.sequence import IGNORE, TokenSplit, score_tokens, test_split_name
from methods.core.api import Benchmark, Metric
from methods.core.seeding import numpy_rng


@dataclass
class MQARArgs:
    vocab_size: int = 128
    seq_len: int = 64
    num_kv_pairs: int = 8
    num_train: int = 20000
    num_test: int = 1000
    power_a: float = 0.01  # zoology's default gap distribution exponent
    length_multipliers: list[int] = field(default_factory=lambda: [1, 2, 4])


def generate(n: int, vocab_size: int, seq_len: int, num_kv_pairs: int, power_a: float,
             rng: np.random.Generator) -> TokenSplit:
    """Vectorised zoology-style MQAR generator (local RNG, no global state)."""
    context = 2 * num_kv_pairs
    space = (seq_len - context) // 2
    if space < num_kv_pairs:
        raise ValueError(f"seq_len {seq_len} too short for {num_kv_pairs} key-value pairs")
    key_vocab = vocab_size // 2
    # Sample keys and values without replacement per row: argsort of uniform noise.
    keys = rng.random((n, key_vocab - 1)).argsort(1)[:, :num_kv_pairs] + 1
    values = rng.random((n, vocab_size - key_vocab)).argsort(1)[:, :num_kv_pairs] + key_vocab
    kvs = np.empty((n, context), dtype=np.int64)
    kvs[:, 0::2], kvs[:, 1::2] = keys, values
    # Gaps without replacement, p ~ power law (zoology): Gumbel top-k on log p.
    p = power_a * np.arange(1, space + 1) ** (power_a - 1)
    scores = np.log(p / p.sum())[None, :] - np.log(-np.log(rng.random((n, space))))
    gaps = np.argsort(-scores, axis=1)[:, :num_kv_pairs]
    queries = np.zeros((n, seq_len - context + 1), dtype=np.int64)
    answers = np.full((n, seq_len - context + 1), IGNORE, dtype=np.int64)
    rows = np.arange(n)[:, None]
    queries[rows, gaps * 2] = keys
    answers[rows, gaps * 2 + 1] = values
    examples = np.concatenate([kvs, queries], axis=1)
    labels = np.concatenate([np.full((n, context), IGNORE), answers], axis=1)[:, 1:]
    inputs = examples[:, :-1].copy()
    filler = inputs == 0
    inputs[filler] = rng.integers(1, vocab_size, size=int(filler.sum()))
    return TokenSplit(torch.from_numpy(inputs), torch.from_numpy(labels))


def load(args: MQARArgs, seed: int) -> dict[str, TokenSplit]:
    """Splits: train; test at the training length; test_<m>x at m times the length."""
    rng = numpy_rng(seed)
    gen = dict(vocab_size=args.vocab_size, num_kv_pairs=args.num_kv_pairs, power_a=args.power_a, rng=rng)
    splits = {"train": generate(args.num_train, seq_len=args.seq_len, **gen)}
    for m in args.length_multipliers:
        splits[test_split_name(m)] = generate(args.num_test, seq_len=args.seq_len * m, **gen)
    return splits


BENCHMARK = Benchmark(
    name="mqar",
    doc=__doc__ or "",
    data_args=MQARArgs,
    load=load,
    score=score_tokens,
    metrics=(Metric("accuracy", True, "share of queried values recalled"),
             Metric("sequence_accuracy", True, "share of sequences with every query right")),
)
