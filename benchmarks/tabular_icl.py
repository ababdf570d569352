"""Tabular classification with few training rows: accuracy and log-loss vs the number of rows.

Each dataset is split once per replicate into a test pool (at most ``max_test`` rows) and a training
pool ordered so that its first ``n`` rows are stratified; every training size ``n`` in ``train_sizes``
uses those first ``n`` rows, so the sets are nested. Example (iris, n = 6): the context holds two rows
of each species; the model predicts the species of the up-to-``max_test`` test rows.

Datasets are named by source:
``sklearn:<name>`` (breast_cancer, wine, digits, iris; shipped with scikit-learn),
``generated:<seed>`` (a ``make_classification`` task: 8 features, 3 classes),
``openml:<data id>`` (paper profile; fetched by scikit-learn into ``openml_home``), and
``file:<path>`` (a local CSV, last column the label, or an ARFF file; how the OpenML loader is tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn import datasets as skdatasets
from sklearn.metrics import accuracy_score, log_loss

from methods.core.api import Benchmark, Metric
from methods.core.seeding import derive_seed, numpy_rng

SKLEARN_TABLES = {"breast_cancer": skdatasets.load_breast_cancer, "wine": skdatasets.load_wine,
                  "digits": skdatasets.load_digits, "iris": skdatasets.load_iris}


@dataclass
class TabularArgs:
    datasets: list[str] = field(default_factory=lambda: ["sklearn:breast_cancer", "sklearn:wine",
                                                         "sklearn:iris", "generated:0"])
    train_sizes: list[int] = field(default_factory=lambda: [8, 16, 32, 64, 96])
    headline_size: int = 32  # the training size of the final (step-less) rows
    max_test: int = 300
    min_rows: int = 0  # paper profile: OpenML datasets with at least this many rows (1250 in the paper)
    openml_home: str = "results/cache/openml"


@dataclass
class TabularTask:
    name: str
    x_train: np.ndarray  # (n_pool, f) float32, stratified order: any prefix is a training set
    y_train: np.ndarray  # (n_pool,) int64 in 0..C-1
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    def prefix(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n > len(self.y_train):
            raise ValueError(f"{self.name}: asked for {n} training rows, the pool has {len(self.y_train)}")
        return self.x_train[:n], self.y_train[:n]


def encode_labels(y: np.ndarray) -> np.ndarray:
    _, codes = np.unique(np.asarray(y).astype(str), return_inverse=True)
    return codes.astype(np.int64)


def load_table_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A local CSV (header row, last column the label) or ARFF file (last attribute the label)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table file {path} does not exist")
    if path.suffix.lower() == ".arff":
        from scipy.io import arff

        records, _ = arff.loadarff(str(path))
        columns = records.dtype.names
        x = np.stack([np.asarray(records[c], dtype=np.float64) for c in columns[:-1]], axis=1)
        y = np.array([v.decode() if isinstance(v, bytes) else v for v in records[columns[-1]]])
        return x, y
    if path.suffix.lower() == ".csv":
        import pandas as pd

        frame = pd.read_csv(path)
        return frame.iloc[:, :-1].to_numpy(dtype=np.float64), frame.iloc[:, -1].to_numpy()
    raise ValueError(f"table file {path}: use a .csv or .arff file")


def load_openml(data_id: int, home: str) -> tuple[np.ndarray, np.ndarray]:
    """An OpenML dataset by id (needs network or scikit-learn's cache under ``home``)."""
    bunch = skdatasets.fetch_openml(data_id=data_id, data_home=home, as_frame=True, parser="auto")
    frame = bunch.data.copy()
    for col in frame.columns:  # categorical columns as codes; TabPFN and the baselines take numbers
        if not np.issubdtype(frame[col].dtype, np.number):
            frame[col] = frame[col].astype("category").cat.codes.replace(-1, np.nan)
    return frame.to_numpy(dtype=np.float64), bunch.target.to_numpy()


def load_source(spec: str, args: TabularArgs) -> tuple[np.ndarray, np.ndarray]:
    kind, _, name = spec.partition(":")
    if kind == "sklearn":
        if name not in SKLEARN_TABLES:
            raise ValueError(f"unknown sklearn table '{name}'; known: {', '.join(sorted(SKLEARN_TABLES))}")
        return SKLEARN_TABLES[name](return_X_y=True)
    if kind == "generated":
        return skdatasets.make_classification(n_samples=1000, n_features=8, n_informative=5, n_redundant=1,
                                              n_classes=3, n_clusters_per_class=1, class_sep=1.0,
                                              random_state=int(name or 0))
    if kind == "openml":
        return load_openml(int(name), args.openml_home)
    if kind == "file":
        return load_table_file(name)
    raise ValueError(f"dataset '{spec}': use sklearn:<name>, generated:<seed>, openml:<id> or file:<path>")


def stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation whose every prefix holds the classes in (about) their overall proportions."""
    order = rng.permutation(len(y))
    y = y[order]
    rank = np.zeros(len(y))
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        rank[members] = (np.arange(len(members)) + rng.random()) / len(members)
    return order[np.argsort(rank, kind="stable")]


def task_name(spec: str) -> str:
    """A split-friendly name: sklearn:iris -> iris, generated:0 -> generated_0, file:/a/b.csv -> b."""
    kind, _, name = spec.partition(":")
    if kind == "sklearn":
        return name
    if kind == "file":
        return Path(name).stem
    return f"{kind}_{name}"


def make_task(spec: str, x: np.ndarray, y: np.ndarray, args: TabularArgs,
              rng: np.random.Generator) -> TabularTask:
    x = np.asarray(x, dtype=np.float32)
    y = encode_labels(y)
    if len(y) < args.min_rows:
        raise ValueError(f"{spec} has {len(y)} rows, fewer than min_rows={args.min_rows}")
    num_classes = int(y.max()) + 1
    if max(args.train_sizes) < num_classes:
        raise ValueError(f"{spec}: largest train size {max(args.train_sizes)} < {num_classes} classes")
    n_test = min(args.max_test, len(y) - max(args.train_sizes))
    if n_test < num_classes:
        raise ValueError(f"{spec}: {len(y)} rows leave too few test rows for train sizes up to "
                         f"{max(args.train_sizes)}")
    order = stratified_order(y, rng)
    # Every k-th row of the stratified order goes to the test pool, so both pools stay stratified.
    test_idx = order[np.linspace(0, len(order) - 1, n_test).round().astype(int)]
    pool = np.setdiff1d(order, test_idx, assume_unique=True)
    pool = pool[stratified_order(y[pool], rng)]
    return TabularTask(name=task_name(spec), x_train=x[pool],
                       y_train=y[pool], x_test=x[test_idx], y_test=y[test_idx], num_classes=num_classes)


def load(args: TabularArgs, seed: int) -> dict[str, TabularTask]:
    if args.headline_size not in args.train_sizes:
        raise ValueError(f"headline_size {args.headline_size} must be one of train_sizes {args.train_sizes}")
    tasks = {}
    for spec in args.datasets:
        x, y = load_source(spec, args)
        task = make_task(spec, x, y, args, numpy_rng(derive_seed(seed, spec)))
        tasks[task.name] = task
    return tasks


def score(probabilities: np.ndarray, y_true: np.ndarray, num_classes: int) -> dict[str, float]:
    """Accuracy and log-loss of class probabilities (columns = classes 0..C-1)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(y_true), num_classes):
        expected = (len(y_true), num_classes)
        raise ValueError(f"probabilities have shape {probabilities.shape}, expected {expected}")
    return {"accuracy": accuracy_score(y_true, probabilities.argmax(1)),
            "log_loss": log_loss(y_true, np.clip(probabilities, 1e-7, 1.0), labels=np.arange(num_classes))}


BENCHMARK = Benchmark(
    name="tabular_icl",
    doc=__doc__ or "",
    data_args=TabularArgs,
    load=load,
    score=score,
    metrics=(Metric("accuracy", True, "test accuracy"), Metric("log_loss", False, "test cross-entropy")),
)
