"""Federated image/signal classification with Dirichlet non-IID clients (FedYolo, arXiv 2307.04905).

A *task* is a labelled train/test set whose training examples are split over clients by
flwr-datasets' ``DirichletPartitioner`` (per class, client shares ~ Dir(alpha); small alpha = more
heterogeneous). Several tasks form the multi-task sequence (task 1, then task 2, ...).

Example (smoke, MNIST-1D generated offline by ``mnist1d.data.make_dataset``; 40-sample signals):

    source  digits 0-4                  -> pretraining of the transformer (centralised, inside the DAG)
    upper   digits 5-9, labels 0-4      -> task 1, federated over 10 clients, Dir(0.5)
    upper_permuted  the same digits with their 40 time steps in one fixed random order and the labels
            permuted -> task 2: a different input distribution that a shared encoder must be rebuilt
            for (permuted MNIST, the standard forgetting test: Goodfellow et al., arXiv 1312.6211;
            Kirkpatrick et al., arXiv 1612.00796)
    upper_flipped  the same digits time-reversed and negated, labels permuted (a milder task 2)

Each task keeps ``val_fraction`` of its training examples aside as a validation set (never given to
clients): rounds-to-target and tuning read validation accuracy, never test accuracy.

Paper profile: CIFAR-100 / CIFAR-10 read from the python pickles of the official archives in
``data_dir`` (``cifar-100-python/``, ``cifar-10-batches-py/``), the source task being the hub
checkpoint's pretraining (ImageNet-21k), so there is no source split.

Metrics: ``accuracy`` on the task's test set, and ``client_accuracy``: each client's test accuracy
under its own label distribution (per-class accuracy weighted by the client's training label shares),
averaged over clients; the personalised view under which local-only training is judged.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from methods.core.api import Benchmark, Metric
from methods.core.atomic import atomic_path
from methods.core.config import CACHE_ROOT
from methods.core.seeding import derive_seed, numpy_rng

MNIST1D_TASKS = ("upper", "upper_permuted", "upper_flipped", "lower")
CIFAR_TASKS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


@dataclass
class FederatedVisionArgs:
    dataset: str = "mnist1d"  # mnist1d | cifar
    tasks: list[str] = field(default_factory=lambda: ["upper", "upper_permuted"])
    data_dir: str = ""  # cifar: folder holding the extracted archives
    num_samples: int = 8000  # mnist1d: generated examples (80% train, as mnist1d splits)
    source_classes: int = 5  # mnist1d: digits below this form the pretraining source task
    # mnist1d: > 0 generates the source task from its own set of this many examples (another seed), as a
    # hub backbone is pretrained on far more data than federation sees; 0: the source digits of the same set
    source_samples: int = 0
    # mnist1d: > 0 pretrains on this many classes of random 12-point templates (mnist1d's transforms, none of
    # the digits), a broad source like a hub backbone's instead of five digits; examples: source_samples or
    # num_samples. 0: digits below source_classes
    source_templates: int = 0
    num_clients: int = 10
    dirichlet_alpha: float = 0.5
    min_partition_size: int = 10
    val_fraction: float = 0.15  # of each task's training set, held out (stratified) for validation
    max_train: int = 0  # > 0 subsamples each task's training set (paper profile on a budget)
    max_test: int = 0


@dataclass
class TaskData:
    """One task: tensors, its client partitions and each client's label distribution."""

    name: str
    num_classes: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    partitions: list[np.ndarray] = field(default_factory=list)  # indices into the training set
    client_label_dist: np.ndarray | None = None  # (clients, classes), rows sum to 1
    x_val: torch.Tensor | None = None  # held out from training (never on a client)
    y_val: torch.Tensor | None = None

    def client_data(self, client: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.tensor(self.partitions[client])  # a copy: arrays unpickled by Ray are read-only
        return self.x_train[idx], self.y_train[idx]


@dataclass
class FederatedData:
    tasks: list[TaskData]
    source: TaskData | None = None  # the pretraining task (smoke); None when a hub checkpoint is used

    def task(self, name: str) -> TaskData:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"no task '{name}'; tasks: {', '.join(t.name for t in self.tasks)}")


# --- MNIST-1D, generated offline --------------------------------------------------------------------

def random_templates(num_classes: int, seed: int) -> dict[str, np.ndarray]:
    """``num_classes`` random 12-point templates in mnist1d's template format: interior points uniform on
    [2.5, 7.5] between end points at 5 (the digits span 2.6-7), then whitened and shifted to start at 0
    exactly as mnist1d's ``get_templates`` does with its ten digits."""
    rng = numpy_rng(derive_seed("source-templates", seed))
    x = np.full((num_classes, 12), 5.0)
    x[:, 1:-1] = rng.uniform(2.5, 7.5, size=(num_classes, 10))
    x -= x.mean(1, keepdims=True)
    x /= x.std(1, keepdims=True)
    x -= x[:, :1]
    return {"x": x / 6.0, "t": np.linspace(-5, 5, 12) / 6.0, "y": np.arange(num_classes)}


def generate_mnist1d(num_samples: int, seed: int, templates: int = 0) -> dict[str, np.ndarray]:
    """mnist1d's own generator (never its download), of its ten digits or (``templates`` > 0) of that many
    random template classes. It seeds NumPy's global RNG itself, so the global state is saved and
    restored around it; the result is cached under results/cache."""
    key = hashlib.sha256(json.dumps([num_samples, seed] + ([templates] if templates else []))
                         .encode()).hexdigest()[:16]
    path = Path(CACHE_ROOT) / "data" / f"mnist1d_{key}.npz"
    if path.is_file():
        with np.load(path) as blob:
            return {k: blob[k] for k in blob.files}
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    state = np.random.get_state()
    try:
        raw = make_dataset(args, random_templates(templates, seed) if templates else None)
    finally:
        np.random.set_state(state)
    out = {k: np.asarray(raw[k]) for k in ("x", "y", "x_test", "y_test")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **out)
    return out


def _standardise(x: np.ndarray, mean: float, std: float) -> torch.Tensor:
    return torch.from_numpy(((x - mean) / std).astype(np.float32)).unsqueeze(1)


def _digits_below(k: int, name: str, raw: dict[str, np.ndarray], mean: float, std: float) -> TaskData:
    """The digits 0..k-1 of a generated set (train and test), standardised with the given statistics."""
    y, yt = raw["y"].astype(np.int64), raw["y_test"].astype(np.int64)
    return TaskData(name, k, _standardise(raw["x"][y < k], mean, std), torch.from_numpy(y[y < k]),
                    _standardise(raw["x_test"][yt < k], mean, std), torch.from_numpy(yt[yt < k]))


def mnist1d_tasks(args: FederatedVisionArgs, seed: int) -> tuple[TaskData, list[TaskData]]:
    raw = generate_mnist1d(args.num_samples, seed % (2**31))
    mean, std = float(raw["x"].mean()), float(raw["x"].std())
    x, y, xt, yt = raw["x"], raw["y"].astype(np.int64), raw["x_test"], raw["y_test"].astype(np.int64)
    k = args.source_classes
    if not 1 <= k <= 9:
        raise ValueError(f"source_classes must be in 1..9, got {k}")
    n = args.source_templates
    if n < 0 or n == 1:
        raise ValueError(f"source_templates must be 0 or at least 2, got {n}")
    lower = _digits_below(k, "lower", raw, mean, std)
    source_seed = derive_seed("source-set", seed) % (2**31)
    if n:  # classes of shapes none of the tasks use, examples of their own (source_samples: how many)
        shapes = generate_mnist1d(args.source_samples or args.num_samples, source_seed, templates=n)
        src = _digits_below(n, "source", shapes, mean, std)
    elif args.source_samples > 0:  # same digits and input scaling, examples of their own
        src = _digits_below(k, "source", generate_mnist1d(args.source_samples, source_seed), mean, std)
    else:
        src = TaskData("source", k, lower.x_train, lower.y_train, lower.x_test, lower.y_test)
    upper, upper_t = y >= k, yt >= k
    perm = numpy_rng(derive_seed("label-permutation", seed)).permutation(10 - k)
    time_order = numpy_rng(derive_seed("time-permutation", seed)).permutation(x.shape[-1])
    tasks = []
    for name in args.tasks:
        if name == "upper":
            tasks.append(TaskData(name, 10 - k, _standardise(x[upper], mean, std),
                                  torch.from_numpy(y[upper] - k), _standardise(xt[upper_t], mean, std),
                                  torch.from_numpy(yt[upper_t] - k)))
        elif name == "upper_permuted":  # same digits, inputs scrambled by one fixed time permutation
            tasks.append(TaskData(name, 10 - k, _standardise(x[upper][:, time_order], mean, std),
                                  torch.from_numpy(perm[y[upper] - k]),
                                  _standardise(xt[upper_t][:, time_order], mean, std),
                                  torch.from_numpy(perm[yt[upper_t] - k])))
        elif name == "upper_flipped":  # an unrelated task on the same kind of signal
            tasks.append(TaskData(name, 10 - k, _standardise(-x[upper][:, ::-1], mean, std),
                                  torch.from_numpy(perm[y[upper] - k]),
                                  _standardise(-xt[upper_t][:, ::-1], mean, std),
                                  torch.from_numpy(perm[yt[upper_t] - k])))
        elif name == "lower":
            tasks.append(lower)
        else:
            raise ValueError(f"unknown mnist1d task '{name}'; known: {', '.join(MNIST1D_TASKS)}")
    return src, tasks


# --- CIFAR from the official python pickles -------------------------------------------------------

def read_cifar(root: str | Path, name: str) -> TaskData:
    """Read CIFAR-10/100 from the extracted official archive (``cifar-10-batches-py/`` with
    ``data_batch_1..5`` and ``test_batch``; ``cifar-100-python/`` with ``train`` and ``test``).
    Images become float tensors (n, 3, 32, 32) in [0, 1]; fine labels for CIFAR-100."""
    if name not in CIFAR_TASKS:
        raise ValueError(f"unknown cifar task '{name}'; known: {', '.join(CIFAR_TASKS)}")
    folder = Path(root) / CIFAR_TASKS[name]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: extract the official {name} python archive into "
                                f"data_dir={root!s}")
    if name == "cifar10":
        train_files, test_files, label_key, num_classes = (
            [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", 10)
    else:
        train_files, test_files, label_key, num_classes = ["train"], ["test"], b"fine_labels", 100

    def read(files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for f in files:
            with open(folder / f, "rb") as fh:
                batch = pickle.load(fh, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[label_key], dtype=np.int64))
        return (torch.from_numpy(np.concatenate(xs)).float() / 255.0, torch.from_numpy(np.concatenate(ys)))

    x_train, y_train = read(train_files)
    x_test, y_test = read(test_files)
    return TaskData(name, num_classes, x_train, y_train, x_test, y_test)


# --- partitions and the benchmark -----------------------------------------------------------------

def dirichlet_partitions(labels: np.ndarray, num_clients: int, alpha: float, min_size: int,
                         seed: int) -> list[np.ndarray]:
    """flwr-datasets' DirichletPartitioner over the label column, seeded."""
    import datasets
    from flwr_datasets.partitioner import DirichletPartitioner

    partitioner = DirichletPartitioner(num_partitions=num_clients, partition_by="label", alpha=alpha,
                                       min_partition_size=min_size, self_balancing=True, seed=seed)
    partitioner.dataset = datasets.Dataset.from_dict({"label": labels.tolist(),
                                                      "index": np.arange(len(labels)).tolist()})
    return [np.asarray(partitioner.load_partition(c)["index"], dtype=np.int64) for c in range(num_clients)]


def split_validation(task: TaskData, fraction: float, rng: np.random.Generator) -> None:
    """Move a stratified ``fraction`` of the task's training examples into its validation set."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return
    labels = task.y_train.numpy()
    held = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:round(fraction * (labels == c).sum())]
                           for c in range(task.num_classes)])
    keep = np.setdiff1d(np.arange(len(labels)), held)
    held = torch.from_numpy(np.sort(held))
    task.x_val, task.y_val = task.x_train[held], task.y_train[held]
    task.x_train, task.y_train = task.x_train[torch.from_numpy(keep)], task.y_train[torch.from_numpy(keep)]


def _subsample(x: torch.Tensor, y: torch.Tensor, n: int, rng: np.random.Generator):
    if n <= 0 or n >= len(y):
        return x, y
    idx = torch.from_numpy(np.sort(rng.choice(len(y), n, replace=False)))
    return x[idx], y[idx]


def load(args: FederatedVisionArgs, seed: int) -> FederatedData:
    """Tasks with partitions, cached under results/cache/data per (arguments, seed): every job of a
    replicate reads the same file, and only the first pays for generation and partitioning."""
    key = hashlib.sha256(json.dumps([asdict(args), seed], sort_keys=True).encode()).hexdigest()[:16]
    path = Path(CACHE_ROOT) / "data" / f"federated_vision_{key}.pt"
    if path.is_file():
        return torch.load(path, weights_only=False)
    data = build(args, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return data


def build(args: FederatedVisionArgs, seed: int) -> FederatedData:
    if args.num_clients < 1 or args.dirichlet_alpha <= 0:
        raise ValueError("num_clients must be >= 1 and dirichlet_alpha > 0")
    if args.dataset == "mnist1d":
        source, tasks = mnist1d_tasks(args, seed)
    elif args.dataset == "cifar":
        source, tasks = None, [read_cifar(args.data_dir, name) for name in args.tasks]
    else:
        raise ValueError(f"unknown dataset '{args.dataset}'; known: mnist1d, cifar")
    rng = numpy_rng(seed)
    for i, task in enumerate(tasks):
        task.x_train, task.y_train = _subsample(task.x_train, task.y_train, args.max_train, rng)
        task.x_test, task.y_test = _subsample(task.x_test, task.y_test, args.max_test, rng)
        split_validation(task, args.val_fraction, numpy_rng(derive_seed("validation", seed, i)))
        task.partitions = dirichlet_partitions(task.y_train.numpy(), args.num_clients, args.dirichlet_alpha,
                                               args.min_partition_size, derive_seed("partition", seed, i))
        counts = np.stack([np.bincount(task.y_train.numpy()[p], minlength=task.num_classes)
                           for p in task.partitions]).astype(np.float64)
        task.client_label_dist = counts / counts.sum(1, keepdims=True)
    return FederatedData(tasks=tasks, source=source)


def score(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int,
          client_label_dist: np.ndarray | None = None) -> dict[str, float]:
    """Test accuracy, and (given clients' label distributions) the mean client-weighted accuracy."""
    predictions, labels = predictions.cpu(), labels.cpu()
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} differ")
    correct = (predictions == labels).double()
    out = {"accuracy": correct.mean().item()}
    if client_label_dist is not None:
        per_class = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, labels, correct)
        counts = torch.bincount(labels, minlength=num_classes).double()
        per_class = (per_class / counts.clamp(min=1)).numpy()
        out["client_accuracy"] = float((client_label_dist @ per_class).mean())
    return out


BENCHMARK = Benchmark(
    name="federated_vision",
    doc=__doc__ or "",
    data_args=FederatedVisionArgs,
    load=load,
    score=score,
    metrics=(Metric("accuracy", True, "test accuracy of the (global) model"),
             Metric("client_accuracy", True, "mean over clients of accuracy under the client's label mix")),
)
