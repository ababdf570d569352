"""In-context Gaussian linear regression with a shifted target task (arXiv 2503.11842, Section 3).

A *prompt* is ``n`` labelled context rows of one task and query rows to predict::

    x_i ~ N(0, Sigma_x)  (d dims),   y_i = <beta, x_i> + noise,   beta drawn per task

Example (d = 2, n = 2, one query): context ``([0.3, -1.2], 0.9), ([1.1, 0.4], -0.2)``, query
``[0.5, 0.5] -> ?``. A model sees the context and predicts each query's label.

Pretraining tasks draw ``beta ~ N(0, Sigma_beta)`` with most of its variance in an ``r``-dimensional
subspace (the first ``r`` coordinates); target tasks mix that subspace with its complement,
``beta = sqrt(a) * beta_in + sqrt(1 - a) * beta_out``, so the *alignment* ``a`` is the knob: ``a = 1``
is the pretraining distribution, ``a = 0`` a task orthogonal to it (the paper's distribution shift).
Each split (``aligned``, ``shifted``, ...) holds target tasks with, per task, a context of up to
``max(context_lengths)`` rows, ``max(ks)`` extra labelled rows for test-time training, and query rows
that are only scored. ``val_*`` tasks are fresh draws used to choose the TTT step size; ``test_*`` tasks
are only scored. ``Sigma_x`` is the identity (``isotropic``) or has power-law eigenvalues ``i^-1``
(``powerlaw``, the paper's general-covariance case), normalised to trace ``d``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from methods.core.api import Benchmark, Metric
from methods.core.seeding import numpy_rng


@dataclass
class ICLRegressionArgs:
    dim: int = 16
    pretrain_rank: int = 4  # the subspace holding the pretraining tasks' variance
    off_subspace_variance: float = 0.05  # pretraining variance left outside that subspace (per coordinate)
    covariance: str = "isotropic"  # or "powerlaw"
    noise: float = 0.1  # label noise standard deviation
    context_length: int = 32  # the prompt length of the vs-k rows
    context_lengths: list[int] = field(default_factory=lambda: [8, 16, 32, 64])
    ks: list[int] = field(default_factory=lambda: [1, 4, 16, 64])  # TTT samples
    k_for_context_rows: int = 16  # k used by the vs-context-length rows
    alignments: dict[str, float] = field(default_factory=lambda: {"aligned": 1.0, "shifted": 0.0})
    num_val_tasks: int = 500
    num_test_tasks: int = 1000
    num_queries: int = 16


@dataclass
class TaskSet:
    """Target tasks of one split: contexts, TTT rows and scored queries, each batched over tasks."""

    beta: torch.Tensor  # (T, d)
    context_x: torch.Tensor  # (T, n_max, d)
    context_y: torch.Tensor  # (T, n_max)
    ttt_x: torch.Tensor  # (T, k_max, d)
    ttt_y: torch.Tensor  # (T, k_max)
    query_x: torch.Tensor  # (T, q, d)
    query_y: torch.Tensor  # (T, q)


@dataclass
class ICLRegressionData:
    args: ICLRegressionArgs
    sigma_x_sqrt: torch.Tensor  # (d,) standard deviations of the (diagonal) feature covariance
    pretrain_beta_std: torch.Tensor  # (d,)
    splits: dict[str, TaskSet]  # "val_<name>" and "test_<name>" per alignment

    def pretraining_batch(self, n_prompts: int, context_length: int, num_queries: int,
                          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                               torch.Tensor]:
        """Fresh pretraining prompts: (context_x, context_y, query_x, query_y)."""
        d = self.args.dim
        beta = torch.randn(n_prompts, d, generator=generator) * self.pretrain_beta_std
        x = torch.randn(n_prompts, context_length + num_queries, d, generator=generator) * self.sigma_x_sqrt
        y = torch.einsum("tnd,td->tn", x, beta) + self.args.noise * torch.randn(
            n_prompts, context_length + num_queries, generator=generator)
        return x[:, :context_length], y[:, :context_length], x[:, context_length:], y[:, context_length:]


def feature_std(args: ICLRegressionArgs) -> np.ndarray:
    if args.covariance == "isotropic":
        variances = np.ones(args.dim)
    elif args.covariance == "powerlaw":
        variances = 1.0 / np.arange(1, args.dim + 1)
    else:
        raise ValueError(f"covariance '{args.covariance}' unknown; use 'isotropic' or 'powerlaw'")
    return np.sqrt(variances * args.dim / variances.sum())


def pretrain_task_std(args: ICLRegressionArgs) -> np.ndarray:
    """Per-coordinate std of pretraining tasks; E||beta||^2 = d as for an isotropic prior."""
    if not 0 < args.pretrain_rank < args.dim:
        raise ValueError(f"pretrain_rank must lie in 1..dim-1, got {args.pretrain_rank} with dim {args.dim}")
    var = np.full(args.dim, args.off_subspace_variance)
    var[: args.pretrain_rank] = (args.dim - args.off_subspace_variance * (args.dim - args.pretrain_rank)) \
        / args.pretrain_rank
    return np.sqrt(var)


def target_tasks(args: ICLRegressionArgs, alignment: float, n_tasks: int,
                 rng: np.random.Generator) -> np.ndarray:
    """beta = sqrt(a) beta_in + sqrt(1-a) beta_out; each part of squared norm ~ d."""
    if not 0.0 <= alignment <= 1.0:
        raise ValueError(f"alignment must lie in [0, 1], got {alignment}")
    d, r = args.dim, args.pretrain_rank
    inside = np.zeros((n_tasks, d))
    inside[:, :r] = rng.standard_normal((n_tasks, r)) * np.sqrt(d / r)
    outside = np.zeros((n_tasks, d))
    outside[:, r:] = rng.standard_normal((n_tasks, d - r)) * np.sqrt(d / (d - r))
    return np.sqrt(alignment) * inside + np.sqrt(1.0 - alignment) * outside


def make_tasks(args: ICLRegressionArgs, beta: np.ndarray, x_std: np.ndarray,
               rng: np.random.Generator) -> TaskSet:
    n_max, k_max, q = max(args.context_lengths + [args.context_length]), max(args.ks), args.num_queries
    n_tasks, d = beta.shape
    x = rng.standard_normal((n_tasks, n_max + k_max + q, d)) * x_std
    y = np.einsum("tnd,td->tn", x, beta) + args.noise * rng.standard_normal((n_tasks, n_max + k_max + q))
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return TaskSet(beta=t(beta), context_x=t(x[:, :n_max]), context_y=t(y[:, :n_max]),
                   ttt_x=t(x[:, n_max:n_max + k_max]), ttt_y=t(y[:, n_max:n_max + k_max]),
                   query_x=t(x[:, n_max + k_max:]), query_y=t(y[:, n_max + k_max:]))


def load(args: ICLRegressionArgs, seed: int) -> ICLRegressionData:
    if not args.alignments:
        raise ValueError("alignments must name at least one target-task split, e.g. {aligned: 1.0}")
    rng = numpy_rng(seed)
    x_std = feature_std(args)
    splits = {}
    for name, alignment in args.alignments.items():
        for part, n_tasks in (("val", args.num_val_tasks), ("test", args.num_test_tasks)):
            beta = target_tasks(args, alignment, n_tasks, rng)
            splits[f"{part}_{name}"] = make_tasks(args, beta, x_std, rng)
    return ICLRegressionData(args=args, sigma_x_sqrt=torch.as_tensor(x_std, dtype=torch.float32),
                             pretrain_beta_std=torch.as_tensor(pretrain_task_std(args), dtype=torch.float32),
                             splits=splits)


def score(predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Mean squared error of query predictions (the label-noise floor is ``noise**2``)."""
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ")
    return {"mse": float(((predictions - targets) ** 2).mean())}


BENCHMARK = Benchmark(
    name="icl_regression",
    doc=__doc__ or "",
    data_args=ICLRegressionArgs,
    load=load,
    score=score,
    metrics=(Metric("mse", False, "query mean squared error"),),
)
