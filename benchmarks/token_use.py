"""Token-use metrics shared by the reasoning-length benchmarks (TLDR's smoke ``verbose_sum`` and paper
``math_reasoning``): one definition, so the smoke and paper leaderboards report the same quantities."""

from __future__ import annotations

import torch

from methods.core.api import Metric


def token_use_metrics(correct: torch.Tensor, lengths: torch.Tensor, ended: torch.Tensor) -> dict[str, float]:
    """Accuracy, mean tokens (all, right, wrong), accuracy per 1k tokens and the unfinished share.

    ``correct``/``ended`` are boolean per response, ``lengths`` its token count. The per-group means are
    left out (not NaN) when no response falls in the group, so the leaderboard never averages a NaN.
    """
    if not len(correct) == len(lengths) == len(ended):
        raise ValueError(f"{len(correct)} correct flags, {len(lengths)} lengths, {len(ended)} ended flags")
    length = lengths.float()
    accuracy = correct.float().mean().item()
    mean_tokens = length.mean().item()
    metrics = {
        "accuracy": accuracy,
        "mean_tokens": mean_tokens,
        "accuracy_per_1k_tokens": 1000.0 * accuracy / max(mean_tokens, 1e-9),
        "unfinished": (~ended).float().mean().item(),
    }
    if correct.any():
        metrics["mean_tokens_correct"] = length[correct].mean().item()
    if (~correct).any():
        metrics["mean_tokens_wrong"] = length[~correct].mean().item()
    return metrics


def token_use_metric_docs(accuracy_doc: str) -> tuple[Metric, ...]:
    """The metrics ``token_use_metrics`` returns, for a benchmark's ``metrics=``."""
    return (
        Metric("accuracy", True, accuracy_doc),
        Metric("mean_tokens", False, "mean response length in tokens (thinking + answer)"),
        Metric("mean_tokens_correct", False, "mean response length of right answers"),
        Metric("mean_tokens_wrong", False, "mean response length of wrong answers"),
        Metric("accuracy_per_1k_tokens", True, "accuracy divided by mean tokens, times 1000"),
        Metric("unfinished", False, "share of responses that never ended thinking"),
    )
