"""Character-level language modelling on English text that ships with every Python: ``pydoc_data``.

``pydoc_data.topics.topics`` holds the Python reference manual's help topics (~750 KB of English prose
with code). The corpus is the topics concatenated in sorted key order, one blank line apart; the split
is contiguous: the first ``train_fraction`` of the characters trains, the next ``val_fraction``
validates (training curves), the rest tests. Characters outside printable ASCII map to one unknown id.
Windows of ``seq_len`` characters: training windows start every ``seq_len // 2`` characters;
validation and test windows do not overlap. Metrics: perplexity per character, loss (nats) and
bits per character, from the model's per-character negative log-likelihood.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.sequence import TokenSplit
from methods.core.api import Benchmark, Metric
from methods.core.seeding import numpy_rng

ALPHABET = string.printable  # 100 characters; id 100 = unknown
VOCAB_SIZE = len(ALPHABET) + 1


@dataclass
class LMTextArgs:
    seq_len: int = 128
    train_fraction: float = 0.9
    val_fraction: float = 0.05
    max_val_windows: int = 64  # cap so curve evaluation stays cheap
    max_test_windows: int = 256
    vocab_size: int = VOCAB_SIZE  # fixed by the alphabet; listed so models size their embedding from it


class LMSplit(TokenSplit):
    """Windows of text; every position is scored by negative log-likelihood, not by argmax."""

    scored_by = "nll"


def corpus_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def encode(text: str) -> np.ndarray:
    lookup = np.full(256, len(ALPHABET), dtype=np.int64)
    lookup[[ord(c) for c in ALPHABET]] = np.arange(len(ALPHABET))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return np.where(codes < 256, lookup[codes.clip(0, 255)], len(ALPHABET))


def windows(ids: np.ndarray, seq_len: int, stride: int) -> LMSplit:
    starts = np.arange(0, len(ids) - seq_len - 1, stride)
    idx = starts[:, None] + np.arange(seq_len + 1)[None, :]
    chunk = torch.from_numpy(ids[idx])
    return LMSplit(chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous())


def load(args: LMTextArgs, seed: int) -> dict[str, LMSplit]:
    if args.vocab_size != VOCAB_SIZE:
        raise ValueError(f"vocab_size is fixed by the alphabet: {VOCAB_SIZE}")
    if not 0 < args.train_fraction + args.val_fraction < 1:
        raise ValueError("train_fraction + val_fraction must lie in (0, 1)")
    ids = encode(corpus_text())
    a, b = int(len(ids) * args.train_fraction), int(len(ids) * (args.train_fraction + args.val_fraction))
    rng = numpy_rng(seed)  # only picks which evaluation windows are kept when capped
    val, test = windows(ids[a:b], args.seq_len, args.seq_len), windows(ids[b:], args.seq_len, args.seq_len)

    def cap(split: LMSplit, k: int) -> LMSplit:
        keep = np.sort(rng.permutation(len(split))[:k]) if len(split) > k else np.arange(len(split))
        return LMSplit(split.inputs[keep], split.labels[keep])

    return {"train": windows(ids[:a], args.seq_len, args.seq_len // 2),
            "val": cap(val, args.max_val_windows), "test": cap(test, args.max_test_windows)}


def score(token_nll: torch.Tensor, split: LMSplit) -> dict[str, float]:
    """``token_nll``: (windows, seq_len) negative log-likelihood in nats of each label."""
    if token_nll.shape != split.labels.shape:
        raise ValueError(f"token_nll shape {tuple(token_nll.shape)} != labels {tuple(split.labels.shape)}")
    loss = token_nll.double().mean().item()
    return {"perplexity": math.exp(loss), "loss": loss, "bits_per_char": loss / math.log(2)}


BENCHMARK = Benchmark(
    name="lm_text",
    doc=__doc__ or "",
    data_args=LMTextArgs,
    load=load,
    score=score,
    metrics=(Metric("perplexity", False, "per-character perplexity"),
             Metric("loss", False, "mean negative log-likelihood per character (nats)"),
             Metric("bits_per_char", False, "mean negative log-likelihood per character (bits)")),
)
