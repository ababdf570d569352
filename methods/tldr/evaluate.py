"""Evaluation: sample responses under a stop control, score them, and sweep a control knob into curves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel

from benchmarks.verbose_sum import Split
from methods.tldr.generation import SpecialTokens, StopControl, sample

Score = Callable[[torch.Tensor, Split], dict[str, float]]


@dataclass
class EvalSettings:
    max_new_tokens: int
    temperature: float
    batch_size: int = 512


def evaluate(model: PreTrainedModel, split: Split, score: Score, tokens: SpecialTokens,
             settings: EvalSettings, generator: torch.Generator, control: StopControl | None = None
             ) -> tuple[dict[str, float], torch.Tensor]:
    responses = sample(model, split.prompts, split.prompt_lengths, tokens, settings.max_new_tokens, generator,
                       control, settings.temperature, settings.batch_size)
    return score(responses, split), responses


def pick_operating_point(knobs: list[float], val_accuracy: list[float], val_tokens: list[float],
                         reference_accuracy: float, tolerance: float) -> float:
    """The knob with the fewest validation tokens whose accuracy stays within ``tolerance`` of the
    reference (the SFT model); the most accurate knob when none does. Tuned on validation, never test."""
    ok = [i for i, acc in enumerate(val_accuracy) if acc >= reference_accuracy - tolerance]
    best = min(ok, key=lambda i: val_tokens[i]) if ok else int(np.argmax(val_accuracy))
    return knobs[best]


def accuracy_at_tokens(tokens: list[float], accuracy: list[float], targets: list[float]) -> list[float]:
    """Linear interpolation of an accuracy-tokens curve at target mean-token counts (clamped at its ends),
    so methods whose knobs differ (a TS scale, a token budget) compare at equal token use."""
    order = np.argsort(tokens)
    xs, ys = np.asarray(tokens)[order], np.asarray(accuracy)[order]
    return [float(np.interp(t, xs, ys)) for t in targets]
