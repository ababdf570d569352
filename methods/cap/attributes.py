"""Class attributes and the feature dictionary CAP maps to hyperparameters (arXiv 2401.14343, Section 4).

Each class ``k`` is described by attributes a method may know or estimate without test labels:

* ``frequency``: pi_k, the share of training labels that are ``k``;
* ``noise``: an estimate of the share of wrong labels among the examples labelled ``k`` (the share of
  their ``k`` nearest training neighbours that carry another label; a confident-learning style estimate);
* ``difficulty``: the class's (soft) error on the validation split, measured with the current model;
* ``weight``: the class's importance in a weighted test objective (known in advance by definition).

The dictionary turns them into a few features per class, so the attribute-to-hyperparameter model
has a handful of parameters whatever the number of classes (the point of CAP over free per-class
hyperparameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

KNOWN_ATTRIBUTES = ("frequency", "noise", "difficulty", "weight")


@dataclass
class ClassAttributes:
    frequency: np.ndarray  # (K,) pi_k
    noise: np.ndarray | None = None
    difficulty: np.ndarray | None = None
    weight: np.ndarray | None = None  # (K,) sums to 1

    @property
    def num_classes(self) -> int:
        return len(self.frequency)


def frequency(class_counts: np.ndarray) -> np.ndarray:
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1.0)
    return counts / counts.sum()


@torch.no_grad()
def knn_label_noise(x: torch.Tensor, y: torch.Tensor, num_classes: int, neighbours: int = 10,
                    chunk: int = 2048) -> np.ndarray:
    """Per class, the mean share of an example's nearest training neighbours that carry another label."""
    x = x.reshape(x.shape[0], -1).float()
    disagree = torch.empty(x.shape[0])
    for start in range(0, x.shape[0], chunk):
        dist = torch.cdist(x[start:start + chunk], x)
        rows = torch.arange(start, min(start + chunk, x.shape[0]))
        dist[rows - start, rows] = float("inf")  # not its own neighbour
        idx = dist.topk(min(neighbours, x.shape[0] - 1), largest=False).indices
        disagree[rows] = (y[idx] != y[rows, None]).float().mean(1)
    total = torch.bincount(y, weights=disagree, minlength=num_classes)
    count = torch.bincount(y, minlength=num_classes).clamp_min(1)
    return (total / count).double().numpy()


@torch.no_grad()
def class_difficulty(logits: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     strength: float = 2.0) -> np.ndarray:
    """Per-class mean soft error ``1 - softmax(z)_y`` on validation, shrunk towards its overall mean.

    Continuous (lower variance than 0-1 error on a handful of examples); pass balanced (logit-adjusted)
    logits so that difficulty is not frequency in disguise.
    """
    soft = (1.0 - torch.softmax(logits.float(), 1).gather(1, labels[:, None]).squeeze(1)).double().cpu()
    labels = labels.cpu()
    total = torch.bincount(labels, weights=soft, minlength=num_classes)
    count = torch.bincount(labels, minlength=num_classes).double()
    prior = float(soft.mean())
    return ((total + prior * strength) / (count + strength)).numpy()


def class_error(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int, prior: float = 0.5,
                strength: float = 1.0) -> np.ndarray:
    """Per-class error, shrunk towards ``prior`` by ``strength`` pseudo-examples (tiny classes stay sane)."""
    wrong = torch.bincount(labels, weights=(predictions != labels).double(), minlength=num_classes)
    count = torch.bincount(labels, minlength=num_classes).double()
    return ((wrong + prior * strength) / (count + strength)).numpy()


def dictionary(attrs: ClassAttributes, use: tuple[str, ...]) -> torch.Tensor:
    """Features (K, F): a constant, then per attribute a few transforms on comparable scales.

    frequency -> log(K pi), log(K pi)^2 / 4;  noise -> nu, nu * log(K pi);  difficulty -> d;
    weight -> log(K omega).
    """
    unknown = sorted(set(use) - set(KNOWN_ATTRIBUTES))
    if unknown:
        raise ValueError(f"unknown class attributes {unknown}; known: {', '.join(KNOWN_ATTRIBUTES)}")
    k = attrs.num_classes
    lp = np.log(k * attrs.frequency)
    cols = [np.ones(k)]
    if "frequency" in use:
        cols += [lp, lp**2 / 4]
    for name in ("noise", "difficulty", "weight"):
        if name in use and getattr(attrs, name) is None:
            raise ValueError(f"attribute '{name}' was asked for but not measured")
    if "noise" in use:
        cols += [attrs.noise, attrs.noise * lp]
    if "difficulty" in use:
        cols += [attrs.difficulty]
    if "weight" in use:
        cols += [np.log(k * attrs.weight)]
    return torch.as_tensor(np.stack(cols, 1), dtype=torch.float32)


FREQUENCY_COLUMN = 1  # where log(K pi) sits in the dictionary (initialisations use it)
