"""Per-class loss parameters: CAP's attribute-to-hyperparameter model (A2H) and the free per-class baseline.

Both produce, for every class, the parametric loss's terms (``methods/cap/losses.py``): a multiplicative
logit term delta_k > 0, an additive term iota_k and a weight omega_k > 0.

* **CAP** (arXiv 2401.14343, Eq. 3): ``h_k = D(a_k)^T Theta``, a linear model over the attribute dictionary
  (``methods/cap/attributes.py``): F x H parameters for any number of classes.
* **Free** (the "naive approach" CAP is compared with): a free K x H table, one set per class.

Both start from the logit-adjusted loss (delta = 1, iota = tau0 log pi, omega = 1), as AutoBalance
initialises its search from LA (arXiv 2201.01212). Also here: the validation objectives, as smooth
surrogates over per-class validation losses (balanced, std, worst-class, test-weighted).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from methods.cap.attributes import FREQUENCY_COLUMN

HEADS = ("delta", "iota", "omega")
OBJECTIVES = ("balanced", "std", "worst", "weighted")
OBJECTIVE_METRIC = {"balanced": "balanced_error", "std": "std_class_error", "worst": "worst_class_error",
                    "weighted": "weighted_error"}


class ClassHyperparameters(nn.Module):
    """Raw per-class outputs (K, H) -> delta, iota, omega; subclasses say how the raw table is made."""

    def __init__(self, frequency: np.ndarray, heads: tuple[str, ...]):
        super().__init__()
        unknown = sorted(set(heads) - set(HEADS))
        if unknown:
            raise ValueError(f"unknown loss terms {unknown}; known: {', '.join(HEADS)}")
        self.heads = tuple(heads)
        self.register_buffer("frequency", torch.as_tensor(frequency, dtype=torch.float32))

    def raw(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self) -> dict[str, torch.Tensor | None]:
        raw = self.raw()
        out: dict[str, torch.Tensor | None] = dict.fromkeys(HEADS)
        for j, head in enumerate(self.heads):
            r = raw[:, j]
            if head == "delta":
                out["delta"] = torch.exp(r.clamp(-4.0, 4.0))
            elif head == "iota":
                out["iota"] = r
            else:  # weights keep the training loss's scale: sum_k pi_k omega_k = 1
                w = torch.exp(r.clamp(-6.0, 6.0))
                out["omega"] = w / (self.frequency * w).sum()
        return out

    def num_hyperparameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _init_table(rows: int, heads: tuple[str, ...]) -> torch.Tensor:
    return torch.zeros(rows, len(heads))


class AttributeToHyper(ClassHyperparameters):
    """CAP: a linear map from the class-attribute dictionary (K, F) to the raw loss terms."""

    def __init__(self, features: torch.Tensor, frequency: np.ndarray, heads: tuple[str, ...],
                 init_tau: float):
        super().__init__(frequency, heads)
        self.register_buffer("features", features.float())
        theta = _init_table(features.shape[1], self.heads)
        if "iota" in self.heads:
            theta[FREQUENCY_COLUMN, self.heads.index("iota")] = init_tau  # iota = tau0 log(K pi)
        self.theta = nn.Parameter(theta)

    def set_features(self, features: torch.Tensor) -> None:
        """Refresh measured attributes (e.g. validation difficulty) without touching Theta."""
        if features.shape != self.features.shape:
            raise ValueError(f"features {tuple(features.shape)} != {tuple(self.features.shape)}")
        self.features.copy_(features)

    def raw(self) -> torch.Tensor:
        return self.features @ self.theta


class FreePerClass(ClassHyperparameters):
    """The naive baseline: every class's loss terms are free parameters."""

    def __init__(self, frequency: np.ndarray, heads: tuple[str, ...], init_tau: float):
        super().__init__(frequency, heads)
        table = _init_table(len(frequency), self.heads)
        if "iota" in self.heads:
            table[:, self.heads.index("iota")] = init_tau * torch.log(len(frequency) * self.frequency)
        self.table = nn.Parameter(table)

    def set_features(self, features: torch.Tensor) -> None:  # free parameters ignore attributes
        pass

    def raw(self) -> torch.Tensor:
        return self.table


SURROGATES = ("ce", "soft_error")


def per_class_losses(logits: torch.Tensor, targets: torch.Tensor, num_classes: int,
                     surrogate: str = "ce") -> torch.Tensor:
    """Mean surrogate loss of each class's examples (0 for an absent class).

    ``ce`` is cross-entropy; ``soft_error`` is ``1 - softmax(z)_y``, a bounded smooth stand-in for the
    0-1 error that one badly misclassified validation example cannot dominate.
    """
    if surrogate == "ce":
        ce = F.cross_entropy(logits, targets, reduction="none")
    elif surrogate == "soft_error":
        ce = 1.0 - torch.softmax(logits, 1).gather(1, targets[:, None]).squeeze(1)
    else:
        raise ValueError(f"unknown surrogate '{surrogate}'; known: {', '.join(SURROGATES)}")
    total = torch.zeros(num_classes, dtype=ce.dtype, device=ce.device).index_add(0, targets, ce)
    count = torch.bincount(targets, minlength=num_classes).clamp_min(1).to(ce.dtype)
    return total / count


def objective_value(class_losses: torch.Tensor, objective: str, test_weights: torch.Tensor | None = None,
                    worst_sharpness: float = 5.0, std_weight: float = 1.0) -> torch.Tensor:
    """Smooth surrogate of an objective over per-class validation losses.

    balanced: mean; std: mean + std_weight * std; worst: (1/b) log mean exp(b L_k), a soft maximum;
    weighted: sum_k omega_k L_k with the test-time class importance.
    """
    if objective == "balanced":
        return class_losses.mean()
    if objective == "std":
        return class_losses.mean() + std_weight * class_losses.std(unbiased=False)
    if objective == "worst":
        b = worst_sharpness
        return (torch.logsumexp(b * class_losses, 0) - np.log(class_losses.numel())) / b
    if objective == "weighted":
        if test_weights is None:
            raise ValueError("the weighted objective needs the test-time class weights")
        return (test_weights.to(class_losses) * class_losses).sum()
    raise ValueError(f"unknown objective '{objective}'; known: {', '.join(OBJECTIVES)}")
