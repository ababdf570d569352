"""CIFAR-10-LT / CIFAR-100-LT (Cao et al., arXiv 1906.07413): the paper profile of CAP (arXiv 2401.14343).

Reads CIFAR's own pickle format from a local folder (no download, no torchvision: torchvision is not
installed in this suite's environment, and augmentation is done in torch by ``methods/cap/train.py``):

    <root>/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch  {b"data": uint8 (N, 3072), b"labels"}
    <root>/cifar-100-python/train, test                                  {b"data", b"fine_labels"}

Training counts follow Cao et al.'s exponential profile (``n_max`` per head class, imbalance 100 or 10);
a small long-tailed validation split is held out from the unused training images of each class (so
``n_max + val`` must fit in a class's 5,000 / 500 images); the test set is CIFAR's balanced test set.
Pixels are scaled to [0, 1] and standardised per channel with train statistics.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.longtail import METRICS, ClassificationSplits, LongTailArgs, build_splits, score_split
from methods.core.api import Benchmark
from methods.core.seeding import numpy_rng

LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels",
                10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100),
}


@dataclass
class CIFARLTArgs(LongTailArgs):
    root: str = "data/cifar"
    dataset: str = "cifar10"  # cifar10 | cifar100
    n_max: int = 4500  # Cao et al. keep 5,000 (CIFAR-10) / 500 (CIFAR-100); we hold out val from the rest
    imbalance: float = 100.0
    val_fraction: float = 0.1
    min_val_per_class: int = 2
    test_per_class: int = 0  # 0: CIFAR's whole balanced test set


def _read(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"missing CIFAR file {path}; put CIFAR's python-format archive, extracted, "
                                f"under the benchmark's 'root'")
    with open(path, "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: expected data of shape (N, 3072), got {data.shape}")
    return data.reshape(-1, 3, 32, 32), np.asarray(batch[label_key], dtype=np.int64)


def read_cifar(root: str | Path, dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) as uint8 (N, 3, 32, 32) images and int64 labels."""
    if dataset not in LAYOUT:
        raise ValueError(f"unknown dataset '{dataset}'; known: {', '.join(LAYOUT)}")
    folder, train_files, test_files, key, _ = LAYOUT[dataset]
    base = Path(root) / folder
    train = [_read(base / f, key) for f in train_files]
    test = [_read(base / f, key) for f in test_files]
    return (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]),
            np.concatenate([t[0] for t in test]), np.concatenate([t[1] for t in test]))


def load(args: CIFARLTArgs, seed: int) -> ClassificationSplits:
    x, y, x_test, y_test = read_cifar(args.root, args.dataset)
    num_classes = LAYOUT[args.dataset][4]
    splits = build_splits(x, y, num_classes, n_max=args.n_max, imbalance=args.imbalance,
                          val_fraction=args.val_fraction, min_val_per_class=args.min_val_per_class,
                          test_per_class=args.test_per_class or None, noise_rate=args.noise_rate,
                          test_weights=args.test_weights, rng=numpy_rng(seed), x_test=x_test, y_test=y_test)
    mean = (splits.x_train / 255.0).mean((0, 2, 3), keepdim=True)
    std = (splits.x_train / 255.0).std((0, 2, 3), keepdim=True).clamp_min(1e-3)
    for name in ("x_train", "x_val", "x_test"):
        setattr(splits, name, (getattr(splits, name) / 255.0 - mean) / std)
    return splits


BENCHMARK = Benchmark(name="cifar_lt", doc=__doc__ or "", data_args=CIFARLTArgs, load=load, score=score_split,
                      metrics=METRICS)
