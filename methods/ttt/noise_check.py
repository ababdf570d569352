"""Is a theory-track claim seed's verdict decided by test-task noise or by the pretrained model?

Re-creates, per replicate, exactly the smoke job's pretrained weight W (same data seed, same generator
order over context lengths) and its validation-chosen step size, then reports for the shifted split at
(n, k) = (context_length, max k): the job's own TTT/ICL MSE ratio on its test tasks with a paired bootstrap
standard error over tasks, and the same ratio on ``fresh`` extra tasks drawn from the same distribution
(a near-population value of the same W and step). Nothing here feeds the leaderboard.

    python -m methods.ttt.noise_check --benchmark icl_regression_powerlaw --fresh 20000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.icl_regression import ICLRegressionArgs, feature_std, load, make_tasks, target_tasks
from methods.core.config import load_config
from methods.core.seeding import data_seed, numpy_rng
from methods.ttt.linear_attention import predict, pretrain, ttt_predict
from methods.ttt.theory import LinearTTTArgs, _slice, step_size_grid


def per_task_mse(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    return ((pred - target) ** 2).mean(dim=1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/smoke.yaml")
    parser.add_argument("--benchmark", default="icl_regression_powerlaw")
    parser.add_argument("--split", default="shifted")
    parser.add_argument("--fresh", type=int, default=20000)
    parser.add_argument("--bootstrap", type=int, default=2000)
    opts = parser.parse_args()
    config = load_config(opts.config)
    block = config["methods"]["ttt"]["benchmarks"][opts.benchmark]
    dargs = ICLRegressionArgs(**block["data"])
    args = LinearTTTArgs(**block.get("args", {}))
    grid = step_size_grid(args)
    n, k = dargs.context_length, max(dargs.ks)
    for replicate in range(config["replicates"]):
        seed = data_seed(config["seed"], opts.benchmark, replicate)
        data = load(dargs, seed)
        generator = torch.Generator().manual_seed(seed)
        weight = None
        for length in sorted(set(dargs.context_lengths) | {dargs.context_length}):  # the job's generator order
            if length > n:
                break
            weight = pretrain(lambda b, m=length, d=data, g=generator: d.pretraining_batch(b, m, args.pretrain_queries,
                                                                                           g),
                              dargs.dim, args.pretrain_steps, args.pretrain_batch, args.lr)
        val, test = data.splits[f"val_{opts.split}"], data.splits[f"test_{opts.split}"]
        val_mse = [float(((p - val.query_y) ** 2).mean()) for p in ttt_predict(weight, *_slice(val, n, k), grid)]
        step = grid[int(np.argmin(val_mse))].reshape(1)
        rng = np.random.default_rng(replicate)
        icl = per_task_mse(predict(weight, *_slice(test, n, k)[:2], test.query_x), test.query_y)
        ttt = per_task_mse(ttt_predict(weight, *_slice(test, n, k), step)[0], test.query_y)
        boot = rng.integers(0, len(icl), (opts.bootstrap, len(icl)))
        ratios = ttt[boot].mean(1) / icl[boot].mean(1)
        fresh_rng = numpy_rng(seed + 7919)
        beta = target_tasks(dargs, dargs.alignments[opts.split], opts.fresh, fresh_rng)
        fresh = make_tasks(dargs, beta, feature_std(dargs), fresh_rng)
        icl_f = per_task_mse(predict(weight, *_slice(fresh, n, k)[:2], fresh.query_x), fresh.query_y)
        ttt_f = per_task_mse(ttt_predict(weight, *_slice(fresh, n, k), step)[0], fresh.query_y)
        fresh_val = [float(((p - fresh.query_y) ** 2).mean())
                     for p in ttt_predict(weight, *_slice(fresh, n, k), grid)]
        print(f"replicate {replicate}: step {float(step):.4g}; test ratio {ttt.mean() / icl.mean():.4f} "
              f"(bootstrap SE {ratios.std():.4f}, P(ratio >= 0.8) {np.mean(ratios >= 0.8):.2f}); "
              f"fresh {opts.fresh} tasks: ratio {ttt_f.mean() / icl_f.mean():.4f} at the chosen step, "
              f"{min(fresh_val) / icl_f.mean():.4f} at the best grid step {float(grid[int(np.argmin(fresh_val))]):.4g}")


if __name__ == "__main__":
    main()
