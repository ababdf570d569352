"""The learning-rate sweep that picks the smoke config's ``lr`` for attention and SSA alike.

Both arms get the same sweep (the same grid, seeds and budget) and each keeps the ``lr`` with the lowest
mean *validation* perplexity; the test split is never looked at. Jobs run in this process through the
very code path of a Snakemake job (``methods.ssa.run.run``), reading one benchmark block of a config:

    python -m methods.ssa.sweep --configfile config/smoke.yaml --benchmark lm_text \\
        --variants attention_2l ssa_2l --lrs 3e-3 6e-3 1e-2 --replicates 0 1

Seeds are derived as in the DAG, with ``sweep`` in the run seed so sweep runs are not the reported runs,
and shared by the variants of one (lr, replicate) so that the arms are paired.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from methods.core.api import RunContext
from methods.core.config import load_config
from methods.core.seeding import data_seed, run_seed, seed_everything
from methods.registry import get_benchmark, get_method


def sweep_one(config: dict, benchmark_id: str, variant: str, lr: float, replicate: int,
              overrides: dict) -> dict[str, float]:
    """Final val metrics (and val curve) of one run; ``overrides`` replace args for this sweep."""
    method = get_method("ssa")
    block = config["methods"]["ssa"]["benchmarks"][benchmark_id]
    benchmark = get_benchmark(block.get("benchmark", benchmark_id))
    entry = dict(block["variants"][variant])
    family = method.families[entry.pop("family")]
    names = {f.name for f in dataclasses.fields(family.args)}
    merged = {k: v for k, v in {**block.get("args", {}), **entry, **overrides}.items() if k in names}
    merged["lr"] = lr
    data_names = {f.name for f in dataclasses.fields(benchmark.data_args)}
    data = {**block.get("data", {}), **{k: v for k, v in overrides.items() if k in data_names}}
    # The same seed for every variant at one (lr, replicate): SSA starts as the very same network as
    # attention (its temperatures start at the identity) and sees the same batches, a paired comparison.
    seed = run_seed(config["seed"], benchmark_id, "ssa", f"sweep:{lr}", replicate)
    seed_everything(seed)
    torch.set_num_threads(config.get("threads", 1))
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(scale="sweep", benchmark_id=benchmark_id, benchmark=benchmark, method=method,
                         variant=variant, family=family.name, replicate=replicate, seed=seed,
                         data_seed=data_seed(config["seed"], benchmark_id, replicate),
                         args=family.args(**merged), data_args=benchmark.data_args(**data),
                         device=torch.device("cpu"), dtype=torch.float32, out_dir=Path(tmp))
        method.run(ctx)
    final = {r["metric"]: r["value"] for r in ctx.rows if r["split"] == "val" and r["step"] is None}
    curve = {int(r["step"]): r["value"] for r in ctx.rows
             if r["split"] == "val" and r["step"] is not None and r["metric"] in ("perplexity",
                                                                                  "passkey_accuracy")}
    return {**final, "curve": curve}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", default="config/smoke.yaml")
    parser.add_argument("--benchmark", default="lm_text")
    parser.add_argument("--variants", nargs="+", default=["attention_2l", "ssa_2l"])
    parser.add_argument("--lrs", nargs="+", type=float, default=[3e-3, 6e-3, 1e-2])
    parser.add_argument("--replicates", nargs="+", type=int, default=[0])
    parser.add_argument("--set", nargs="*", default=[],
                        help="overrides key=value (python literals) of the family's or the benchmark's args")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    config = load_config(args.configfile)
    for variant in args.variants:
        for lr in args.lrs:
            for rep in args.replicates:
                started = time.process_time()
                out = sweep_one(config, args.benchmark, variant, lr, rep, overrides)
                metric = "perplexity" if "perplexity" in out else "passkey_accuracy"
                curve = " ".join(f"{s}:{v:.3f}" for s, v in sorted(out["curve"].items()))
                print(f"{variant:18s} lr={lr:.0e} rep={rep} val {metric}={out.get(metric, float('nan')):.4f} "
                      f"cpu={time.process_time() - started:.1f}s | {curve}", flush=True)


if __name__ == "__main__":
    main()
