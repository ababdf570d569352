"""Helpers shared by token-sequence benchmarks: labelled positions and their accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass
class TokenSplit:
    """inputs (n, length) token ids; labels (n, length), IGNORE where a position is not scored."""

    inputs: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]


def token_accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy over scored positions, and the share of sequences with every scored position right."""
    mask = labels != IGNORE
    correct = (predictions == labels) & mask
    per_seq = (correct.sum(1) == mask.sum(1)).float()
    return {"accuracy": (correct.sum() / mask.sum()).item(), "sequence_accuracy": per_seq.mean().item()}


def test_split_name(multiplier: int) -> str:
    """``test`` at the training length, ``test_<m>x`` at m times it (the length-generalisation splits)."""
    return "test" if multiplier == 1 else f"test_{multiplier}x"


def score_tokens(predictions: torch.Tensor, split: TokenSplit) -> dict[str, float]:
    """A token benchmark's ``score``: accuracy over the split's labelled positions."""
    return token_accuracy(predictions, split.labels)
