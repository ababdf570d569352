"""A small synthetic prior over classification tasks, for prior-fitted pretraining (TabPFN's recipe).

Each task draws Gaussian features and labels from a random function of them: a linear map (70%) or a
random one-hidden-layer tanh network (30%), plus Gumbel noise, then the arg-max class. This is a far
smaller prior than TabPFN's structural causal models (Hollmann et al., arXiv 2207.01848), sized so a
tiny model learns in-context classification within a CPU-minute.

Example (3 features, 2 classes): rows ``x ~ N(0, I_3)``, ``y = argmax(x @ W + noise)``; a prompt shows
the first rows with labels and asks for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PriorBatch:
    x: torch.Tensor  # (rows, batch, features), TabPFN's layout
    y: torch.Tensor  # (rows, batch) float class ids
    num_classes: int


def sample_tasks(generator: torch.Generator, batch: int, rows: int, features: int, classes: int,
                 nonlinear_share: float = 0.3, noise: float = 0.3, hidden: int = 8) -> PriorBatch:
    """``batch`` tasks of ``rows`` rows each, sharing the feature and class counts (one tensor)."""
    if classes < 2 or features < 1:
        raise ValueError(f"need classes >= 2 and features >= 1, got {classes}, {features}")
    x = torch.randn(batch, rows, features, generator=generator)
    linear = x @ (2.0 * torch.randn(batch, features, classes, generator=generator))
    net = torch.tanh(x @ torch.randn(batch, features, hidden, generator=generator)) \
        @ (2.0 * torch.randn(batch, hidden, classes, generator=generator))
    nonlinear = (torch.rand(batch, 1, 1, generator=generator) < nonlinear_share).float()
    logits = (1 - nonlinear) * linear + nonlinear * net
    gumbel = -torch.log(-torch.log(torch.rand(logits.shape, generator=generator).clamp_min(1e-9)))
    y = (logits + noise * gumbel).argmax(-1)
    return PriorBatch(x=x.transpose(0, 1).contiguous(), y=y.float().transpose(0, 1).contiguous(),
                      num_classes=classes)
