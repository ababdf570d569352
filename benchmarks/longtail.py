"""Helpers shared by the long-tailed classification benchmarks (CAP, arXiv 2401.14343).

Every long-tailed task is built the same way from a per-class pool of examples:

* **train** keeps ``n_k = n_max * imbalance ** (-k / (K - 1))`` examples of class ``k`` (the exponential
  profile of Cao et al., arXiv 1906.07413, ``get_img_num_per_cls``), optionally with noisy labels;
* **val** is small and long-tailed like train (``val_fraction * n_k``, at least ``min_val_per_class``):
  the split CAP's hyperparameters are fitted on, so a method with many free hyperparameters can overfit it;
* **test** is balanced, and every class also carries a test-time importance weight (``test_weights``) for
  the weighted objective.

Example (K=3, n_max=100, imbalance=10): train counts (100, 31, 10), val counts (20, 6, 2) at val_fraction
0.2, test 50 per class. Metrics are per-class errors and their summaries: balanced (mean), std, worst,
and the test-weighted error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from methods.core.api import Metric


@dataclass
class ClassificationSplits:
    """Features and labels of each split; ``y_train`` holds the (possibly noisy) observed labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    test_weights: np.ndarray  # (K,) importance of each class at test time, sums to 1
    y_train_clean: torch.Tensor | None = None  # the true labels, for reporting the realised noise only

    @property
    def train_counts(self) -> np.ndarray:
        """Observed label counts of the training split (what a method may use as class frequency)."""
        return np.bincount(self.y_train.numpy(), minlength=self.num_classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def long_tailed_counts(n_max: int, num_classes: int, imbalance: float) -> np.ndarray:
    """Cao et al.'s exponential profile: class k keeps ``int(n_max * imbalance ** (-k / (K - 1)))``."""
    if imbalance < 1:
        raise ValueError(f"imbalance must be >= 1 (ratio of largest to smallest class), got {imbalance}")
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    k = np.arange(num_classes)
    return np.maximum(1, (n_max * imbalance ** (-k / (num_classes - 1))).astype(int))


def val_counts(train_counts: np.ndarray, val_fraction: float, min_val_per_class: int) -> np.ndarray:
    return np.maximum(min_val_per_class, np.round(val_fraction * train_counts).astype(int))


def flip_labels(labels: np.ndarray, num_classes: int, noise_rate: float,
                rng: np.random.Generator) -> np.ndarray:
    """Symmetric label noise: each label moves, with probability ``noise_rate``, to another class."""
    if not 0 <= noise_rate < 1:
        raise ValueError(f"noise_rate must be in [0, 1), got {noise_rate}")
    flip = rng.random(labels.shape[0]) < noise_rate
    shift = rng.integers(1, num_classes, size=labels.shape[0])
    return np.where(flip, (labels + shift) % num_classes, labels)


def make_test_weights(num_classes: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Test-time class importance: ``uniform``, or ``random`` (log-uniform over a 10x range)."""
    if kind == "uniform":
        w = np.ones(num_classes)
    elif kind == "random":
        w = np.exp(rng.uniform(0.0, np.log(10.0), size=num_classes))
    else:
        raise ValueError(f"unknown test_weights '{kind}'; known: uniform, random")
    return w / w.sum()


def split_pools(pools: list[np.ndarray], train_n: np.ndarray, val_n: np.ndarray, test_n: int | None,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split per-class index pools into (train, val, test) index arrays; test takes ``test_n`` or the rest."""
    train, val, test = [], [], []
    for k, pool in enumerate(pools):
        need = train_n[k] + val_n[k] + (1 if test_n is None else test_n)
        if len(pool) < need:
            raise ValueError(f"class {k} has {len(pool)} examples, needs {need} (train {train_n[k]}, "
                             f"val {val_n[k]}, test {test_n or 'rest'}); lower n_max or the test size")
        perm = rng.permutation(pool)
        test.append(perm[train_n[k] + val_n[k]:] if test_n is None else perm[:test_n])
        rest = perm if test_n is None else perm[test_n:]
        train.append(rest[: train_n[k]])
        val.append(rest[train_n[k]: train_n[k] + val_n[k]])
    return np.concatenate(train), np.concatenate(val), np.concatenate(test)


def build_splits(x: np.ndarray, y: np.ndarray, num_classes: int, *, n_max: int, imbalance: float,
                 val_fraction: float, min_val_per_class: int, test_per_class: int | None, noise_rate: float,
                 test_weights: str, rng: np.random.Generator,
                 x_test: np.ndarray | None = None, y_test: np.ndarray | None = None) -> ClassificationSplits:
    """Long-tailed train/val and a balanced test from a labelled pool (or a given test set)."""
    train_n = long_tailed_counts(n_max, num_classes, imbalance)
    val_n = val_counts(train_n, val_fraction, min_val_per_class)
    pools = [np.flatnonzero(y == k) for k in range(num_classes)]
    if x_test is None:
        tr, va, te = split_pools(pools, train_n, val_n, test_per_class, rng)
        x_test, y_test = x[te], y[te]
    else:
        tr, va, _ = split_pools(pools, train_n, val_n, 0, rng)  # test comes from the given test set
        if test_per_class:
            keep = np.concatenate([np.flatnonzero(y_test == k)[:test_per_class] for k in range(num_classes)])
            x_test, y_test = x_test[keep], y_test[keep]
    clean = y[tr]
    noisy = flip_labels(clean, num_classes, noise_rate, rng) if noise_rate > 0 else clean

    def t(a: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)

    return ClassificationSplits(
        x_train=t(x[tr]), y_train=t(noisy, torch.long), x_val=t(x[va]), y_val=t(y[va], torch.long),
        x_test=t(x_test), y_test=t(y_test, torch.long), num_classes=num_classes,
        test_weights=make_test_weights(num_classes, test_weights, rng),
        y_train_clean=t(clean, torch.long) if noise_rate > 0 else None)


def class_errors(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class error rates (NaN for a class absent from ``labels``)."""
    predictions, labels = predictions.reshape(-1).long().cpu(), labels.reshape(-1).long().cpu()
    if predictions.shape != labels.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {labels.shape[0]} labels")
    wrong = torch.bincount(labels, weights=(predictions != labels).double(), minlength=num_classes)
    count = torch.bincount(labels, minlength=num_classes).double()
    return wrong / count  # 0/0 -> NaN marks an empty class


def score(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int,
          test_weights: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy, balanced / std / worst-class error and the importance-weighted error."""
    errs = class_errors(predictions, labels, num_classes)
    present = ~torch.isnan(errs)
    e = errs[present]
    w = torch.as_tensor(np.ones(num_classes) if test_weights is None else test_weights, dtype=torch.float64)
    w = w[present] / w[present].sum()
    return {
        "accuracy": float((predictions.reshape(-1).cpu() == labels.reshape(-1).cpu()).double().mean()),
        "balanced_accuracy": float(1.0 - e.mean()),
        "balanced_error": float(e.mean()),
        "std_class_error": float(e.std(unbiased=False)),
        "worst_class_error": float(e.max()),
        "weighted_error": float((w * e).sum()),
    }


METRICS = (
    Metric("accuracy", True, "share of examples classified right"),
    Metric("balanced_accuracy", True, "mean of per-class accuracies"),
    Metric("balanced_error", False, "mean of per-class errors (1 - balanced accuracy)"),
    Metric("std_class_error", False, "standard deviation of per-class errors (a fairness objective)"),
    Metric("worst_class_error", False, "largest per-class error"),
    Metric("weighted_error", False, "per-class errors weighted by the test-time class importance"),
)


def score_split(predictions: torch.Tensor, data: ClassificationSplits, split: str) -> dict[str, float]:
    """Score predictions on one split (``train``, ``val`` or ``test``) of a long-tailed task."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split '{split}'; known: train, val, test")
    labels = getattr(data, f"y_{split}")
    if split == "train" and data.y_train_clean is not None:
        labels = data.y_train_clean
    return score(predictions, labels, data.num_classes, data.test_weights)


@dataclass
class LongTailArgs:
    """Knobs every long-tailed task shares."""

    n_max: int = 500  # training examples of the largest class
    imbalance: float = 100.0  # largest / smallest class size
    val_fraction: float = 0.1  # val examples per class, as a fraction of its training count
    min_val_per_class: int = 2
    test_per_class: int = 200
    noise_rate: float = 0.0  # symmetric label noise on train labels (val stays clean: a small trusted set)
    test_weights: str = "random"  # class importance for the weighted objective: uniform | random
