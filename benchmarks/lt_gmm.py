"""Long-tailed Gaussian mixture: the setting of CAP's theory (arXiv 2401.14343, Section 3).

Class ``k`` has mean ``mu_k`` (i.i.d. Gaussian, scaled to norm ``separation``) and its own noise level
``sigma_k = sigma * exp(u_k)``, ``u_k ~ U(-difficulty_spread, difficulty_spread)`` drawn independently
of the class's frequency: classes differ in size *and* in difficulty, the two attributes CAP adapts to.

Example (K=3, dim=2): x = mu_y + sigma_y * eps with train counts (500, 50, 5) at imbalance 100, a small
long-tailed val split and a balanced test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.longtail import METRICS, ClassificationSplits, LongTailArgs, build_splits, score_split
from methods.core.api import Benchmark
from methods.core.seeding import numpy_rng


@dataclass
class GMMArgs(LongTailArgs):
    num_classes: int = 10
    dim: int = 32
    separation: float = 3.0  # norm of every class mean
    sigma: float = 1.0
    difficulty_spread: float = 0.4  # log-range of the per-class noise levels


def load(args: GMMArgs, seed: int) -> ClassificationSplits:
    rng = numpy_rng(seed)
    means = rng.standard_normal((args.num_classes, args.dim))
    means *= args.separation / np.linalg.norm(means, axis=1, keepdims=True)
    spread = args.difficulty_spread
    sigmas = args.sigma * np.exp(rng.uniform(-spread, spread, args.num_classes))
    per_class = args.n_max + max(args.min_val_per_class, round(args.val_fraction * args.n_max)) \
        + args.test_per_class
    y = np.repeat(np.arange(args.num_classes), per_class)
    x = means[y] + sigmas[y, None] * rng.standard_normal((y.shape[0], args.dim))
    return build_splits(x, y, args.num_classes, n_max=args.n_max, imbalance=args.imbalance,
                        val_fraction=args.val_fraction, min_val_per_class=args.min_val_per_class,
                        test_per_class=args.test_per_class, noise_rate=args.noise_rate,
                        test_weights=args.test_weights, rng=rng)


BENCHMARK = Benchmark(name="lt_gmm", doc=__doc__ or "", data_args=GMMArgs, load=load, score=score_split,
                      metrics=METRICS)
