"""The TabPFN track: a prior-fitted TabPFN, with and without test-time training, against classical baselines.

Stage ``prior_pretraining`` (smoke profile) pretrains a small TabPFN v2 architecture on the synthetic
prior and writes it in tabpfn's checkpoint format; variants with ``after: pretrain`` load it by
``model_path`` (the paper profile names the TabPFN v2 checkpoint file instead). Every variant records,
per dataset (split = dataset name) and averaged over datasets (split ``test``), accuracy and log-loss at
every training size (step = n) and at ``headline_size`` (the final rows). ``tabpfn`` also records
``accuracy_over_chance`` (accuracy minus the majority-class rate): the smoke model must learn in context
before TTT on it means anything. ``tabpfn_ttt`` chooses its TTT steps and learning rate per prompt on the
prompt's own rows
(``select_ttt_setting``; recorded as ``ttt_steps_selected``) and also records ``accuracy_gain`` over the
same model without TTT and the ``sample_size_reduction`` at matched accuracy (``sample_size_reduction``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from methods.core.api import RunContext
from methods.ttt.tabpfn_model import (
    CHECKPOINT_NAME,
    build_small_model,
    classifier_proba,
    identity_inference_config,
    pretrain_on_prior,
    save_checkpoint,
    select_ttt_on_tasks,
    select_ttt_setting,
    stratified_holdout,
    ttt_proba,
)

if TYPE_CHECKING:  # sklearn (benchmark, baselines) is imported only by tabular jobs, not theory jobs
    from benchmarks.tabular_icl import TabularTask


@dataclass
class PretrainArgs:
    emsize: int = 32
    nlayers: int = 2
    nhead: int = 2
    max_num_classes: int = 10
    init_std: float = 0.02
    steps: int = 1200
    batch: int = 8
    rows: int = 64
    max_features: int = 8
    max_classes: int = 4
    lr: float = 3.0e-3


@dataclass
class TabPFNArgs:
    model_path: str | None = None  # a checkpoint file; None = the `after:` stage's checkpoint
    identity_preprocessing: bool = True  # raw features, one estimator (what TTT fine-tunes on)
    inference_precision: str = "float32"  # tabpfn's "auto" is bfloat16 autocast on CPU; TTT trains float32


@dataclass
class TabPFNTTTArgs(TabPFNArgs):
    # Per prompt, (learning rate, steps) is chosen on a held-out share of the context (never the test
    # rows) from lr_grid x step_grid plus "no TTT"; select: false uses ttt_steps / ttt_lr as given.
    # selection: "context" (per prompt), "pooled" (once per context size: the held-out share of every
    # benchmark table's context, log-losses averaged over the tables; 4x the held-out rows of "context")
    # or "generated" (once per context size, on held-out generated make_classification tasks drawn from
    # the data seed; never a benchmark table).
    select: bool = True
    selection: str = "context"
    generated_tasks: int = 3
    generated_features: list[int] = field(default_factory=lambda: [4, 8, 16])
    lr_grid: list[float] = field(default_factory=lambda: [1.0e-3, 3.0e-3])
    step_grid: list[int] = field(default_factory=lambda: [4, 8, 16])
    val_fraction: float = 0.25  # share of the context held out to score the settings
    ttt_steps: int = 20
    ttt_lr: float = 1.0e-3
    query_fraction: float = 0.3  # share of the context held out as queries in each leave-some-out split
    splits_per_step: int = 2


@dataclass
class LogisticArgs:
    c_grid: list[float] = field(default_factory=lambda: [1.0, 0.01, 0.1, 10.0, 100.0])
    max_folds: int = 3


@dataclass
class HGBArgs:
    leaf_grid: list[int] = field(default_factory=lambda: [5, 2, 10])
    lr_grid: list[float] = field(default_factory=lambda: [0.1, 0.3])
    max_iter: int = 50
    max_folds: int = 3


def run_pretraining(ctx: RunContext) -> None:
    args: PretrainArgs = ctx.args
    model, config = build_small_model(args.emsize, args.nlayers, args.nhead, args.max_num_classes,
                                      args.init_std, ctx.seed)
    ctx.log(f"TabPFN v2 architecture: {sum(p.numel() for p in model.parameters()):,} parameters")
    losses = pretrain_on_prior(model, args.steps, args.batch, args.rows, args.max_features, args.max_classes,
                               args.lr, torch.Generator().manual_seed(ctx.seed), log=ctx.log)
    save_checkpoint(model, config, ctx.out_dir / CHECKPOINT_NAME, identity_inference_config())
    (ctx.out_dir / "pretraining.json").write_text(json.dumps({"loss_curve": losses}))


def checkpoint_path(ctx: RunContext, args: TabPFNArgs) -> Path:
    if args.model_path:
        return Path(args.model_path).expanduser()
    if not ctx.inputs:
        raise ValueError(f"variant '{ctx.variant}' needs model_path or `after: <pretraining stage>`")
    return next(iter(ctx.inputs.values())) / CHECKPOINT_NAME


Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


class TTTPredictor:
    """TTT with its setting chosen on the context (or fixed); remembers each call's (lr, steps)."""

    def __init__(self, ctx: RunContext, path: Path, inference: object | None) -> None:
        self.ctx, self.args, self.path, self.inference = ctx, ctx.args, path, inference
        self.generator = torch.Generator().manual_seed(ctx.seed)
        self.selected: list[tuple[float, int]] = []
        self.per_size: dict[int, tuple[float, int]] = {}
        if self.args.select and self.args.selection not in ("context", "pooled", "generated"):
            raise ValueError(f"selection must be 'context', 'pooled' or 'generated', got '{self.args.selection}'")
        if self.args.select and self.args.selection == "generated":
            self.per_size = self.select_on_generated_tasks()

    def select_on_generated_tasks(self) -> dict[int, tuple[float, int]]:
        """Per training size, the (lr, steps) with the lowest held-out loss on generated tasks."""
        from sklearn.datasets import make_classification

        from methods.core.seeding import derive_seed, numpy_rng

        args, rng = self.args, numpy_rng(derive_seed(self.ctx.data_seed, "ttt_generated_selection"))
        sizes = list(self.ctx.data_args.train_sizes)
        tables = []
        for i in range(args.generated_tasks):
            features = args.generated_features[i % len(args.generated_features)]
            x, y = make_classification(n_samples=max(sizes) + 200, n_features=features,
                                       n_informative=min(features, 5), n_redundant=0, n_classes=2 + i % 2,
                                       n_clusters_per_class=1, random_state=int(rng.integers(2**31)))
            tables.append((x.astype(np.float32), y.astype(np.int64)))
        chosen = {}
        for n in sizes:
            tasks = [(x[:n], y[:n], x[-200:], y[-200:]) for x, y in tables]
            setting = select_ttt_on_tasks(self.path, tasks, args.lr_grid, args.step_grid, args.query_fraction,
                                          args.splits_per_step, self.generator, str(self.ctx.device))
            chosen[n] = (setting.lr, setting.steps)
        self.ctx.log(f"TTT setting chosen on generated tasks per n: {chosen}")
        return chosen

    def select_pooled(self, tasks: dict[str, TabularTask]) -> None:
        """Per training size, one (lr, steps) chosen on the held-out share of every table's context.

        Only the n context rows of each table are used (split into fit / held-out as in per-prompt
        selection); the held-out log-loss is averaged over the tables, so the choice rests on ~4x the
        held-out rows of a single prompt. Test rows are never seen.
        """
        args = self.args
        for n in self.ctx.data_args.train_sizes:
            held_out, classes = [], []
            for task in tasks.values():
                x, y = task.prefix(n)
                fit, val = stratified_holdout(y, args.val_fraction, self.generator)
                held_out.append((x[fit], y[fit], x[val], y[val]))
                classes.append(task.num_classes)
            setting = select_ttt_on_tasks(self.path, held_out, args.lr_grid, args.step_grid, args.query_fraction,
                                          args.splits_per_step, self.generator, str(self.ctx.device), classes)
            self.per_size[n] = (setting.lr, setting.steps)
            self.ctx.log(f"n={n}: pooled selection chose lr {setting.lr:g}, {setting.steps} steps "
                         f"(held-out log-loss {setting.val_loss:.4f})")

    def __call__(self, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, num_classes: int) -> np.ndarray:
        args, device = self.args, str(self.ctx.device)
        lr, steps = args.ttt_lr, args.ttt_steps
        if args.select and args.selection in ("generated", "pooled"):
            lr, steps = self.per_size[len(y)]
        elif args.select:
            setting = select_ttt_setting(self.path, x, y, num_classes, args.lr_grid, args.step_grid,
                                         args.query_fraction, args.splits_per_step, args.val_fraction,
                                         self.generator, device)
            lr, steps = setting.lr, setting.steps
        self.selected.append((lr, steps))
        return ttt_proba(self.path, x, y, x_test, num_classes, steps, lr, args.query_fraction,
                         args.splits_per_step, self.generator, device, self.inference, args.inference_precision)


def predictor_for(ctx: RunContext) -> Predictor:
    """(x_train, y_train, x_test, num_classes) -> class probabilities, for this run's variant."""
    args, device = ctx.args, str(ctx.device)
    if ctx.family in ("tabpfn", "tabpfn_ttt"):
        path = checkpoint_path(ctx, args)
        inference = identity_inference_config() if args.identity_preprocessing else None
        if ctx.family == "tabpfn":
            return lambda x, y, xt, c: classifier_proba(path, x, y, xt, c, device, inference,
                                                        args.inference_precision)
        return TTTPredictor(ctx, path, inference)
    from methods.ttt.baselines import hist_gradient_boosting_proba, logistic_regression_proba

    if ctx.family == "logistic_regression":
        return lambda x, y, xt, c: logistic_regression_proba(x, y, xt, c, args.c_grid, args.max_folds,
                                                             ctx.seed)
    if ctx.family == "hist_gradient_boosting":
        return lambda x, y, xt, c: hist_gradient_boosting_proba(x, y, xt, c, args.leaf_grid, args.lr_grid,
                                                                args.max_iter, args.max_folds, ctx.seed)
    raise ValueError(f"no predictor for family '{ctx.family}'")


def curves(ctx: RunContext, tasks: dict[str, TabularTask], predict: Predictor) -> dict[str, dict[int, dict]]:
    """Benchmark scores per task and training size."""
    out: dict[str, dict[int, dict]] = {}
    for name, task in tasks.items():
        out[name] = {}
        for n in ctx.data_args.train_sizes:
            x, y = task.prefix(n)
            proba = predict(x, y, task.x_test, task.num_classes)
            out[name][n] = ctx.benchmark.score(proba, task.y_test, task.num_classes)
        ctx.log(f"{name}: accuracy by n {[round(s['accuracy'], 3) for s in out[name].values()]}")
    return out


def record_curves(ctx: RunContext, scores: dict[str, dict[int, dict]]) -> None:
    headline = ctx.data_args.headline_size
    for n in ctx.data_args.train_sizes:
        for name, per_size in scores.items():
            ctx.record_all(per_size[n], split=name, step=n)
            if n == headline:
                ctx.record_all(per_size[n], split=name)
        mean = {m: float(np.mean([s[n][m] for s in scores.values()])) for m in scores[next(iter(scores))][n]}
        ctx.record_all(mean, split="test", step=n)
        if n == headline:
            ctx.record_all(mean, split="test")


def required_size(sizes: list[int], accuracy: list[float], target: float) -> float:
    """The fewest rows at which an accuracy-vs-rows curve reaches ``target``.

    The curve is its running maximum (the best reached with at most n rows), interpolated linearly in
    accuracy against log(rows) between measured sizes. Clipped to the measured range: ``sizes[0]`` if
    the first point already reaches it (so the true size is at most that), ``inf`` if no point does.
    """
    logs = np.log(np.asarray(sizes, dtype=float))
    acc = np.maximum.accumulate(np.asarray(accuracy, dtype=float))
    if target <= acc[0]:
        return float(sizes[0])
    if target > acc[-1]:
        return math.inf
    i = int(np.searchsorted(acc, target))  # acc[i-1] < target <= acc[i]
    frac = (target - acc[i - 1]) / max(acc[i] - acc[i - 1], 1e-12)
    return math.exp(logs[i - 1] + frac * (logs[i] - logs[i - 1]))


def sample_size_reduction(sizes: list[int], base_acc: list[float], ttt_acc: list[float]) -> float:
    """How many times fewer rows TTT needs to reach the accuracy the model without TTT ends at.

    Target = the no-TTT accuracy at the largest size; factor = rows the no-TTT curve needs to reach it
    (at most the largest size; fewer if it got there earlier) / rows the TTT curve needs
    (``required_size``). Bounds from the measured range: at most largest/smallest (TTT reaches the target
    at the smallest size; a lower bound then), and if TTT never reaches it, rows(no TTT) / largest (an upper
    bound: TTT needs more rows than were measured).
    """
    target = base_acc[-1]
    need_base = required_size(sizes, base_acc, target)
    need_ttt = required_size(sizes, ttt_acc, target)
    return need_base / min(need_ttt, float(sizes[-1]))


def matched_size_factor(sizes: list[int], reference_acc: list[float], accuracy: float, n: int) -> float:
    """How many times ``n`` rows the reference curve needs to reach ``accuracy`` (the at-each-n factor).

    Clipped to the measured sizes: beyond the largest it returns largest/n (a lower bound), below the
    smallest smallest/n.
    """
    return min(required_size(sizes, reference_acc, accuracy), float(sizes[-1])) / n


def record_ttt_effect(ctx: RunContext, ttt: dict[str, dict[int, dict]],
                      base: dict[str, dict[int, dict]], selected: list[tuple[float, int]]) -> None:
    """accuracy_gain and size_factor_at_n per n, sample_size_reduction per curve, the chosen TTT steps.

    Split ``test`` is the dataset-averaged accuracy curves (the headline factor); ``datasets_geomean``
    the geometric mean of the per-dataset factors.
    """
    sizes, headline = list(ctx.data_args.train_sizes), ctx.data_args.headline_size
    steps = {(name, n): s for (name, n), (_, s) in zip([(name, n) for name in ttt for n in sizes], selected,
                                                      strict=True)}
    curves_of = {name: ([base[name][m]["accuracy"] for m in sizes], [ttt[name][m]["accuracy"] for m in sizes])
                 for name in ttt}
    mean_base = [float(np.mean([curves_of[name][0][i] for name in ttt])) for i in range(len(sizes))]
    mean_ttt = [float(np.mean([curves_of[name][1][i] for name in ttt])) for i in range(len(sizes))]
    curves_of["test"] = (mean_base, mean_ttt)
    for split, (base_acc, ttt_acc) in curves_of.items():
        ctx.record("sample_size_reduction", sample_size_reduction(sizes, base_acc, ttt_acc), split=split)
        for i, n in enumerate(sizes):
            gain = ttt_acc[i] - base_acc[i]
            chosen = float(np.mean([steps[(name, n)] for name in ttt])) if split == "test" \
                else float(steps[(split, n)])
            ctx.record("accuracy_gain", gain, split=split, step=n)
            ctx.record("size_factor_at_n", matched_size_factor(sizes, base_acc, ttt_acc[i], n), split=split,
                       step=n)
            ctx.record("ttt_steps_selected", chosen, split=split, step=n)
            if n == headline:
                ctx.record("accuracy_gain", gain, split=split)
                ctx.record("ttt_steps_selected", chosen, split=split)
    per_dataset = [sample_size_reduction(sizes, *curves_of[name]) for name in ttt]
    ctx.record("sample_size_reduction", float(np.exp(np.mean(np.log(per_dataset)))), split="datasets_geomean")
    ctx.log(f"sample_size_reduction (mean curves): {sample_size_reduction(sizes, mean_base, mean_ttt):.2f}; "
            f"chosen (lr, steps) per (dataset, n): {selected}")


def run_tabular(ctx: RunContext) -> None:
    tasks: dict[str, TabularTask] = ctx.load_data()
    predict = predictor_for(ctx)
    if isinstance(predict, TTTPredictor) and predict.args.select and predict.args.selection == "pooled":
        predict.select_pooled(tasks)
    scores = curves(ctx, tasks, predict)
    record_curves(ctx, scores)
    headline = ctx.data_args.headline_size
    if ctx.family == "tabpfn":
        over = [scores[name][headline]["accuracy"] - np.bincount(t.y_test).max() / len(t.y_test)
                for name, t in tasks.items()]
        ctx.record("accuracy_over_chance", float(np.mean(over)))
        for name, value in zip(tasks, over, strict=True):
            ctx.record("accuracy_over_chance", float(value), split=name)
    if ctx.family == "tabpfn_ttt":
        args = ctx.args
        path = checkpoint_path(ctx, args)
        inference = identity_inference_config() if args.identity_preprocessing else None
        base = curves(ctx, tasks, lambda x, y, xt, c: classifier_proba(path, x, y, xt, c, str(ctx.device),
                                                                        inference, args.inference_precision))
        record_ttt_effect(ctx, scores, base, predict.selected)
