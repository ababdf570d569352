"""The theory track: linear attention pretrained on in-context regression, with and without one TTT step.

Both families pretrain the same ``W`` (pretraining prompts are data, drawn from the replicate's data seed,
so ``linear_icl`` and ``linear_ttt`` of one replicate start from the identical model) at every context
length. ``linear_ttt`` then takes the one-step rank-one update of arXiv 2503.11842 (Proposition 3.1)
on ``k`` labelled target-task rows; its step size is chosen per (split, n, k) on the ``val_*`` tasks and
only then scored on the ``test_*`` tasks.

Rows (split = target-task alignment name): ``mse_vs_k`` (step = k, context length fixed),
``mse_vs_context`` (step = n, k fixed), ``mse`` at the largest k, and for ``linear_ttt`` its chosen
``ttt_step_size``, ``relative_gain`` = 1 - mse_ttt / mse_icl on the same test tasks, and
``shift_advantage`` = the gain on the least aligned split minus the gain on the most aligned one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmarks.icl_regression import ICLRegressionData, TaskSet
from methods.core.api import RunContext
from methods.ttt.linear_attention import predict, pretrain, ttt_predict


@dataclass
class LinearICLArgs:
    pretrain_steps: int = 1500
    pretrain_batch: int = 256
    pretrain_queries: int = 8
    lr: float = 0.01


@dataclass
class LinearTTTArgs(LinearICLArgs):
    # One global step size per (split, n, k), picked from this log grid (0 = no update) on val tasks.
    step_size_min: float = 1e-5
    step_size_max: float = 1.0
    step_size_count: int = 31


def step_size_grid(args: LinearTTTArgs) -> torch.Tensor:
    if not 0 < args.step_size_min < args.step_size_max or args.step_size_count < 2:
        raise ValueError("need 0 < step_size_min < step_size_max and step_size_count >= 2")
    grid = torch.logspace(torch.log10(torch.tensor(args.step_size_min)),
                          torch.log10(torch.tensor(args.step_size_max)), args.step_size_count)
    return torch.cat([torch.zeros(1), grid])


def _slice(tasks: TaskSet, n: int, k: int) -> tuple[torch.Tensor, ...]:
    return (tasks.context_x[:, :n], tasks.context_y[:, :n], tasks.ttt_x[:, :k], tasks.ttt_y[:, :k],
            tasks.query_x)


def evaluate(ctx: RunContext, weight: torch.Tensor, val: TaskSet, test: TaskSet, n: int, k: int,
             grid: torch.Tensor | None) -> tuple[float, float, float]:
    """Test MSE without TTT, with TTT (step chosen on val; no TTT when grid is None), and the step."""
    score = ctx.benchmark.score
    cx, cy, _, _, qx = _slice(test, n, k)
    icl = score(predict(weight, cx, cy, qx), test.query_y)["mse"]
    if grid is None:
        return icl, icl, 0.0
    val_preds = ttt_predict(weight, *_slice(val, n, k), grid)
    val_mse = torch.tensor([score(p, val.query_y)["mse"] for p in val_preds])
    best = grid[int(val_mse.argmin())]
    test_pred = ttt_predict(weight, *_slice(test, n, k), best.reshape(1))[0]
    return icl, score(test_pred, test.query_y)["mse"], float(best)


def run_theory(ctx: RunContext) -> None:
    args: LinearICLArgs = ctx.args
    data: ICLRegressionData = ctx.load_data()
    dargs = data.args
    generator = torch.Generator().manual_seed(ctx.data_seed)
    lengths = sorted(set(dargs.context_lengths) | {dargs.context_length})
    weights = {}
    for n in lengths:
        weights[n] = pretrain(lambda b, n=n: data.pretraining_batch(b, n, args.pretrain_queries, generator),
                              dargs.dim, args.pretrain_steps, args.pretrain_batch, args.lr, log=ctx.log)
    grid = step_size_grid(ctx.args) if isinstance(ctx.args, LinearTTTArgs) else None
    gains: dict[str, float] = {}
    for name in dargs.alignments:
        val, test = data.splits[f"val_{name}"], data.splits[f"test_{name}"]
        for k in dargs.ks:
            icl, ttt, step = evaluate(ctx, weights[dargs.context_length], val, test, dargs.context_length, k,
                                      grid)
            ctx.record("mse_vs_k", ttt, split=name, step=k)
            if grid is not None:
                ctx.record("ttt_step_size", step, split=name, step=k)
        for n in dargs.context_lengths:
            _, ttt, _ = evaluate(ctx, weights[n], val, test, n, dargs.k_for_context_rows, grid)
            ctx.record("mse_vs_context", ttt, split=name, step=n)
        icl, ttt, _ = evaluate(ctx, weights[dargs.context_length], val, test, dargs.context_length,
                               max(dargs.ks), grid)
        ctx.record("mse", ttt, split=name)
        if grid is not None:
            gains[name] = 1.0 - ttt / icl
            ctx.record("relative_gain", gains[name], split=name)
        ctx.log(f"{name}: test mse at k={max(dargs.ks)}: {ttt:.4f} (no TTT {icl:.4f})")
    if gains and len(gains) > 1:
        by_alignment = sorted(dargs.alignments, key=dargs.alignments.get)
        ctx.record("shift_advantage", gains[by_alignment[0]] - gains[by_alignment[-1]])
