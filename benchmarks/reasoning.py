"""Shared by the chain-of-thought search tasks (MNNS, ProntoQA, ProsQA): one split layout and its scores.

Every example is laid out the same way, so one model and one decoder serve all three tasks::

    prompt (P tokens) | step 1 ... step S (chain of thought) | answer

``step_targets[i, t]`` is the CSFT target of step t: the empirical distribution of the valid traces'
tokens at that step (CoT2, arXiv 2505.23648, Sec. 4); ``trace[i]`` is one valid discrete trace (the
discrete-CoT target); ``answer[i]`` is the token that is scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import torch

from methods.core.api import Metric

PASS_AT = (1, 2, 4, 8, 16)


@dataclass
class ReasoningSplit:
    prompt: torch.Tensor  # (n, P) int64
    step_targets: torch.Tensor  # (n, S, V) float32, rows sum to 1
    trace: torch.Tensor  # (n, S) int64, one valid trace
    answer: torch.Tensor  # (n,) int64
    vocab: list[str]  # token names, for samples and debugging
    traces: torch.Tensor | None = None  # (n, M, S) all traces ranked best first (MNNS; top-B targets)
    num_valid: torch.Tensor | None = None  # (n,) how many of ``traces`` are valid

    def __len__(self) -> int:
        return self.prompt.shape[0]

    @property
    def num_steps(self) -> int:
        return self.trace.shape[1]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def device(self) -> torch.device:
        return self.prompt.device

    def to(self, device: torch.device | str) -> ReasoningSplit:
        """The split with every tensor on ``device`` (the same tensors when already there)."""
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return ReasoningSplit(self.prompt.to(device), self.step_targets.to(device), self.trace.to(device),
                              self.answer.to(device), self.vocab, move(self.traces), move(self.num_valid))

    def subset(self, index: torch.Tensor) -> ReasoningSplit:
        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index]

        return ReasoningSplit(self.prompt[index], self.step_targets[index], self.trace[index],
                              self.answer[index], self.vocab, pick(self.traces), pick(self.num_valid))


def pass_at_k_estimate(num_samples: int, num_correct: torch.Tensor, k: int) -> torch.Tensor:
    """Unbiased pass@k from ``num_samples`` draws, ``num_correct`` right (Chen et al., arXiv 2107.03374)."""
    wrong = num_samples - num_correct
    return torch.tensor([1.0 - comb(int(w), k) / comb(num_samples, k) for w in wrong.tolist()])


def score(predictions: torch.Tensor, split: ReasoningSplit) -> dict[str, float]:
    """(n,) answers -> accuracy; (n, k) sampled answers -> pass@j for j in 1, 2, 4, ... <= k."""
    if predictions.shape[0] != len(split):
        raise ValueError(f"{predictions.shape[0]} predictions for a split of {len(split)} examples")
    if predictions.dim() == 1:
        return {"accuracy": (predictions == split.answer).float().mean().item()}
    k = predictions.shape[1]
    correct = (predictions == split.answer[:, None]).sum(1)
    return {f"pass_at_{j}": pass_at_k_estimate(k, correct, j).mean().item() for j in PASS_AT if j <= k}


METRICS = (
    Metric("accuracy", True, "share of test examples whose answer token is right (pass@1 of the decoder)"),
    *(Metric(f"pass_at_{j}", True, f"discrete sampling: some of {j} sampled answers is right")
      for j in PASS_AT),
)
