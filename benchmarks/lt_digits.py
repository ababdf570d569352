"""scikit-learn's 8x8 digits (shipped with the package, no download), made long-tailed.

1,797 images, 10 classes (~180 each): a balanced test split of ``test_per_class`` per class, and
long-tailed train/val splits from the rest (Cao et al.'s exponential profile). Pixels are scaled to
[0, 1] and standardised with train statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.longtail import METRICS, ClassificationSplits, LongTailArgs, build_splits, score_split
from methods.core.api import Benchmark
from methods.core.seeding import numpy_rng


@dataclass
class DigitsArgs(LongTailArgs):
    n_max: int = 100
    imbalance: float = 10.0
    val_fraction: float = 0.15
    test_per_class: int = 50


def standardise(splits: ClassificationSplits) -> ClassificationSplits:
    mean, std = splits.x_train.mean(0), splits.x_train.std(0).clamp_min(1e-3)
    for name in ("x_train", "x_val", "x_test"):
        setattr(splits, name, (getattr(splits, name) - mean) / std)
    return splits


def load(args: DigitsArgs, seed: int) -> ClassificationSplits:
    from sklearn.datasets import load_digits  # local import: only this task pays sklearn's import

    digits = load_digits()
    x, y = digits.data.astype(np.float32) / 16.0, digits.target.astype(np.int64)
    return standardise(build_splits(x, y, 10, n_max=args.n_max, imbalance=args.imbalance,
                                    val_fraction=args.val_fraction, min_val_per_class=args.min_val_per_class,
                                    test_per_class=args.test_per_class, noise_rate=args.noise_rate,
                                    test_weights=args.test_weights, rng=numpy_rng(seed)))


BENCHMARK = Benchmark(name="lt_digits", doc=__doc__ or "", data_args=DigitsArgs, load=load,
                      score=score_split, metrics=METRICS)
