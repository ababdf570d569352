"""What the GPU scripts print about a machine and its finished jobs (one reader for both scripts).

    python workflows/scripts/gpu_report.py versions NAME ...       torch/CUDA, then each package's version
    python workflows/scripts/gpu_report.py methods [ROOT]          per (method, device): jobs, wall, peak memory
    python workflows/scripts/gpu_report.py runs [ROOT]             per job: wall, peak memory, final test rows
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
from pathlib import Path

import pandas as pd

FINAL_METRICS = {"accuracy", "perplexity", "bits_total", "forgetting", "rounds_to_target", "tokens_per_second",
                 "extra_parameter_fraction", "passkey_accuracy", "client_accuracy"}


def versions(names: list[str]) -> None:
    import torch

    print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
    for name in names:
        try:
            print(f"  {name} {md.version(name)}")
        except md.PackageNotFoundError:
            print(f"  {name} absent")


def manifests(root: Path) -> list[tuple[Path, dict]]:
    return [(m.parent, json.loads(m.read_text())) for m in sorted(Path(root, "results/runs").rglob("manifest.json"))]


def by_method(root: Path) -> None:
    table = pd.DataFrame([{"method": m["job"]["method"], "device": m["environment"].get("device_name", "cpu"),
                           "wall": m["wall_seconds"], "peak_cuda_mb": m.get("peak_cuda_mb", float("nan"))}
                          for _, m in manifests(root)])
    if len(table):
        print(table.groupby(["method", "device"]).agg(jobs=("wall", "size"), wall_s=("wall", "sum"),
                                                      max_job_s=("wall", "max"), peak_mb=("peak_cuda_mb", "max")))


def runs(root: Path) -> None:
    rows = []
    for run_dir, m in manifests(root):
        row = {"benchmark": m["job"]["benchmark"], "variant": m["job"].get("name"),
               "device": m["environment"].get("device_name"), "wall_s": round(m["wall_seconds"], 1),
               "peak_cuda_mb": m.get("peak_cuda_mb")}
        if (run_dir / "metrics.parquet").exists():
            metrics = pd.read_parquet(run_dir / "metrics.parquet")
            final = metrics[metrics["step"].isna() & metrics["metric"].isin(FINAL_METRICS)]
            for (split, metric), value in final.groupby(["split", "metric"])["value"].mean().items():
                if split.startswith("test") or (split == "val" and metric == "perplexity"):
                    row[f"{metric}:{split}"] = round(float(value), 4)
        rows.append(row)
    pd.set_option("display.width", 250, "display.max_rows", 300, "display.max_columns", 40)
    print(pd.DataFrame(rows).to_string(index=False) if rows else "no finished job")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", choices=["versions", "methods", "runs"])
    parser.add_argument("args", nargs="*", help="package names (versions) or the checkout root (default .)")
    args = parser.parse_args()
    if args.report == "versions":
        versions(args.args)
    else:
        (by_method if args.report == "methods" else runs)(Path(args.args[0] if args.args else "."))


if __name__ == "__main__":
    main()
