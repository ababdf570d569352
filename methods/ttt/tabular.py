"""The TabPFN track: a prior-fitted TabPFN, with and without test-time training, against classical baselines.

Stage ``prior_pretraining`` (smoke profile) pretrains a small TabPFN v2 architecture on the synthetic
prior and writes it in tabpfn's checkpoint format; variants with ``after: pretrain`` load it by
``model_path`` (the paper profile names the TabPFN v2 checkpoint file instead). Every variant records,
per dataset (split = dataset name) and averaged over datasets (split ``test``), accuracy and log-loss at
every training size (step = n) and at ``headline_size`` (the final rows). ``tabpfn`` also records
``accuracy_over_chance`` (accuracy minus the majority-class rate): the smoke model must learn in context
before TTT on it means anything. ``tabpfn_ttt`` also records ``accuracy_gain`` over the same model
without TTT and the ``sample_size_reduction`` at matched accuracy: how many times more rows the model
without TTT needs to reach the accuracy TTT reaches with ``n`` rows (log-linear interpolation between
sizes; capped at the largest size, so a capped value is a lower bound).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.tabular_icl import TabularTask
from methods.core.api import RunContext
from methods.ttt.baselines import hist_gradient_boosting_proba, logistic_regression_proba
from methods.ttt.tabpfn_model import (
    CHECKPOINT_NAME,
    build_small_model,
    classifier_proba,
    identity_inference_config,
    pretrain_on_prior,
    save_checkpoint,
    ttt_proba,
)


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


@dataclass
class TabPFNTTTArgs(TabPFNArgs):
    ttt_steps: int = 20
    ttt_lr: float = 1.0e-3
    query_fraction: float = 0.3  # share of the context held out as queries in each leave-some-out split
    splits_per_step: int = 4


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


def predictor_for(ctx: RunContext) -> Predictor:
    """(x_train, y_train, x_test, num_classes) -> class probabilities, for this run's variant."""
    args, device = ctx.args, str(ctx.device)
    if ctx.family in ("tabpfn", "tabpfn_ttt"):
        path = checkpoint_path(ctx, args)
        inference = identity_inference_config() if args.identity_preprocessing else None
        if ctx.family == "tabpfn":
            return lambda x, y, xt, c: classifier_proba(path, x, y, xt, c, device, inference)
        generator = torch.Generator().manual_seed(ctx.seed)
        return lambda x, y, xt, c: ttt_proba(path, x, y, xt, c, args.ttt_steps, args.ttt_lr,
                                             args.query_fraction, args.splits_per_step, generator, device,
                                             inference)
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


def matched_size_factor(sizes: list[int], reference_acc: list[float], accuracy: float, n: int) -> float:
    """How many times ``n`` rows the reference curve needs to reach ``accuracy`` (log-linear interpolation).

    Clipped to the measured sizes: beyond the largest it returns largest/n (a lower bound), below the
    smallest smallest/n.
    """
    logs = np.log(np.asarray(sizes, dtype=float))
    acc = np.maximum.accumulate(np.asarray(reference_acc, dtype=float))  # the best reached with <= n rows
    if accuracy <= acc[0]:
        return sizes[0] / n
    if accuracy > acc[-1]:
        return sizes[-1] / n
    i = int(np.searchsorted(acc, accuracy))  # acc[i-1] < accuracy <= acc[i]
    frac = (accuracy - acc[i - 1]) / max(acc[i] - acc[i - 1], 1e-12)
    return math.exp(logs[i - 1] + frac * (logs[i] - logs[i - 1])) / n


def record_ttt_effect(ctx: RunContext, ttt: dict[str, dict[int, dict]],
                      base: dict[str, dict[int, dict]]) -> None:
    sizes, headline = list(ctx.data_args.train_sizes), ctx.data_args.headline_size
    for n in sizes:
        factors, gains = [], []
        for name in ttt:
            ref = [base[name][m]["accuracy"] for m in sizes]
            factor = matched_size_factor(sizes, ref, ttt[name][n]["accuracy"], n)
            gain = ttt[name][n]["accuracy"] - base[name][n]["accuracy"]
            factors.append(factor)
            gains.append(gain)
            ctx.record("sample_size_reduction", factor, split=name, step=n)
            ctx.record("accuracy_gain", gain, split=name, step=n)
            if n == headline:
                ctx.record("sample_size_reduction", factor, split=name)
                ctx.record("accuracy_gain", gain, split=name)
        geo = float(np.exp(np.mean(np.log(factors))))
        ctx.record("sample_size_reduction", geo, split="test", step=n)
        ctx.record("accuracy_gain", float(np.mean(gains)), split="test", step=n)
        if n == headline:
            ctx.record("sample_size_reduction", geo, split="test")
            ctx.record("accuracy_gain", float(np.mean(gains)), split="test")


def run_tabular(ctx: RunContext) -> None:
    tasks: dict[str, TabularTask] = ctx.load_data()
    scores = curves(ctx, tasks, predictor_for(ctx))
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
                                                                        inference))
        record_ttt_effect(ctx, scores, base)
