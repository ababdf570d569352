"""MNIST-1D (Greydanus, arXiv 2011.14439), generated offline by the ``mnist1d`` package, made long-tailed.

``mnist1d.data.make_dataset`` builds the 40-dimensional signals from the package's templates (never
its download). It seeds NumPy's and Python's *global* generators itself, so we give it a seed derived
from the data seed and restore the global state afterwards. Splits as in ``benchmarks/longtail.py``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from benchmarks.longtail import METRICS, ClassificationSplits, LongTailArgs, build_splits, score_split
from benchmarks.lt_digits import standardise
from methods.core.api import Benchmark
from methods.core.seeding import numpy_rng


@dataclass
class MNIST1DArgs(LongTailArgs):
    num_samples: int = 8000  # generated in total (balanced); train/val/test are drawn from them
    n_max: int = 400
    imbalance: float = 10.0
    test_per_class: int = 200


def generate(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All of ``make_dataset``'s samples (its own train and test parts together), offline."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = num_samples, seed, 1.0
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return data["x"].astype(np.float32), data["y"].astype(np.int64)


def load(args: MNIST1DArgs, seed: int) -> ClassificationSplits:
    rng = numpy_rng(seed)
    x, y = generate(args.num_samples, int(rng.integers(0, 2**31 - 1)))
    return standardise(build_splits(x, y, 10, n_max=args.n_max, imbalance=args.imbalance,
                                    val_fraction=args.val_fraction, min_val_per_class=args.min_val_per_class,
                                    test_per_class=args.test_per_class, noise_rate=args.noise_rate,
                                    test_weights=args.test_weights, rng=rng))


BENCHMARK = Benchmark(name="lt_mnist1d", doc=__doc__ or "", data_args=MNIST1DArgs, load=load,
                      score=score_split, metrics=METRICS)
