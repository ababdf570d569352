"""Run one job: a (benchmark, method, variant, replicate) run or a shared stage, in its own process.

The output directory appears atomically: files are written into a temporary sibling that is renamed
into place only after ``manifest.json`` (written last) is complete, so a job killed half-way leaves
nothing that a rerun or the leaderboard takes for done.

By hand:  python -m methods.core.job --configfile config/smoke.yaml --method cat --benchmark mqar \
              --variant cat_1l --replicate 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from methods.core.api import RunContext
from methods.core.atomic import atomic_dir, write_json
from methods.core.config import JobSpec, load_config, resolve_jobs
from methods.core.devices import DTYPES, resolve_device
from methods.core.provenance import device_info, git_sha, package_versions, resource_usage
from methods.core.seeding import seed_everything
from methods.core.tables import METRIC_ROWS


def run_job(spec: JobSpec) -> Path:
    from methods.registry import get_benchmark, get_method

    torch.set_num_threads(spec.threads)
    method, benchmark = get_method(spec.method), get_benchmark(spec.benchmark_family)
    families = method.stages if spec.kind == "stage" else method.families
    family = families[spec.family]
    device = resolve_device(spec.device)
    seed_everything(spec.seed)
    started = time.perf_counter()
    final = Path(spec.out)
    with atomic_dir(final) as tmp:
        ctx = RunContext(
            scale=spec.scale, benchmark_id=spec.benchmark, benchmark=benchmark, method=method,
            variant=spec.name, family=spec.family,
            replicate=spec.replicate, seed=spec.seed, data_seed=spec.data_seed,
            args=family.args(**spec.args), data_args=benchmark.data_args(**spec.data_args),
            device=device, dtype=DTYPES[spec.dtype], out_dir=tmp,
            inputs={k: Path(v) for k, v in spec.inputs.items()},
        )
        ctx.log(f"start on {device} with {torch.get_num_threads()} thread(s), seed {spec.seed}")
        if spec.kind == "stage":
            assert method.run_stage is not None, f"method {method.name} has stages but no run_stage"
            method.run_stage(ctx)
        else:
            method.run(ctx)
            if not ctx.rows:
                raise RuntimeError(f"{method.name}/{spec.name} recorded no result rows")
            METRIC_ROWS.write(pd.DataFrame(ctx.rows), tmp / "metrics.parquet")
            if ctx.samples:
                with open(tmp / "samples.jsonl", "w") as fh:
                    for example in ctx.samples:
                        fh.write(json.dumps(example, default=str) + "\n")
        wall = time.perf_counter() - started
        write_json(tmp / "manifest.json", {
            "job": json.loads(spec.to_json()),
            "config_hash": spec.config_hash(),
            "git_sha": git_sha(),
            "packages": package_versions(),
            "environment": device_info(device),
            "seed": spec.seed,
            "data_seed": spec.data_seed,
            "wall_seconds": round(wall, 3),
            **{k: round(v, 1) for k, v in resource_usage(device).items()},
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        ctx.log(f"done in {wall:.1f}s -> {final}")
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", help="a resolved job spec as JSON (what the Snakefile passes)")
    parser.add_argument("--configfile", help="resolve the job from this config instead")
    parser.add_argument("--method")
    parser.add_argument("--benchmark")
    parser.add_argument("--variant", help="variant or stage id")
    parser.add_argument("--replicate", type=int, default=0)
    parser.add_argument("--out", help="override the output directory")
    args = parser.parse_args(argv)
    if args.spec:
        spec = JobSpec.from_json(args.spec)
    elif args.configfile:
        jobs = [j for j in resolve_jobs(load_config(args.configfile))
                if (j.method, j.benchmark, j.name, j.replicate)
                == (args.method, args.benchmark, args.variant, args.replicate)]
        if not jobs:
            sys.exit(f"no job {args.method}/{args.benchmark}/{args.variant}/seed{args.replicate} in "
                     f"{args.configfile}")
        spec = jobs[0]
    else:
        parser.error("give --spec or --configfile with --method/--benchmark/--variant")
    if args.out:
        spec.out = args.out
    os.environ.setdefault("OMP_NUM_THREADS", str(spec.threads))
    run_job(spec)


if __name__ == "__main__":
    main()
