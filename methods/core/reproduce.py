"""Re-run finished jobs from their manifests and check that every result row comes out the same.

Seeds are pinned, so a job rerun on the same kind of machine must reproduce its rows exactly; this is
the check for that (and the quickest way to find a job that is not deterministic). Each run directory's
``manifest.json`` holds the resolved job spec; the job is run again, in a fresh process as the DAG runs
it, into a temporary directory (the stage checkpoints it read are reused), and its ``metrics.parquet`` is
compared row by row with the stored one. Timing rows (metrics named ``*cpu_seconds*``) are shown, never
compared.

    python -m methods.core.reproduce results/runs/smoke/mnns/cot2/cot2_csft_d16/seed0 [more run dirs]

Exit status 1 when any row differs, 2 when a run directory is not a finished job.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from methods.core.config import JobSpec
from methods.core.provenance import git_sha
from methods.core.tables import METRIC_ROWS

KEYS = ["scale", "benchmark", "method", "variant", "seed", "split", "metric", "step"]


def is_timing(metric: str) -> bool:
    """Rows that measure the machine, not the result: never expected to repeat."""
    return "cpu_seconds" in metric


def compare(stored: pd.DataFrame, rerun: pd.DataFrame) -> pd.DataFrame:
    """The rows whose value differs (NaN equals NaN) or that exist on one side only; timing rows left out."""
    stored, rerun = (df[~df["metric"].map(is_timing)].assign(step=df["step"].fillna(-1.0))
                     for df in (stored, rerun))
    both = stored[KEYS + ["value"]].merge(rerun[KEYS + ["value"]], on=KEYS, how="outer",
                                           suffixes=("_stored", "_rerun"), indicator=True)
    a, b = both["value_stored"].to_numpy(float), both["value_rerun"].to_numpy(float)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return both[~same | (both["_merge"] != "both")].drop(columns="_merge")


def rerun(run_dir: Path, manifest: dict, scratch: Path) -> pd.DataFrame:
    """Run the job of ``run_dir`` (its ``manifest``) again into ``scratch`` and return its metric rows."""
    spec = JobSpec(**manifest["job"])
    spec.out = str(scratch / "run")
    if spec.kind == "stage":
        raise ValueError(f"{run_dir} is a stage (a checkpoint, no result rows); give a run that reads it")
    job = subprocess.run([sys.executable, "-m", "methods.core.job", "--spec", spec.to_json()],
                         capture_output=True, text=True)
    (scratch / "job.log").write_text(job.stdout + job.stderr)
    if job.returncode:
        raise RuntimeError(f"rerunning {run_dir} failed (exit {job.returncode}):\n{job.stderr[-3000:]}")
    return METRIC_ROWS.read(scratch / "run" / "metrics.parquet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories (with manifest.json)")
    args = parser.parse_args(argv)
    missing = [r for r in args.runs if not (r / "manifest.json").is_file() or not (r / "metrics.parquet").is_file()]
    if missing:
        print("not a finished run (no manifest.json + metrics.parquet): " + ", ".join(map(str, missing)))
        return 2
    head, differing = git_sha(), 0
    for run_dir in args.runs:
        manifest = json.loads((run_dir / "manifest.json").read_text())
        if manifest.get("git_sha") != head:
            print(f"note: {run_dir} was made at commit {manifest.get('git_sha')}, the code here is {head}")
        with tempfile.TemporaryDirectory(prefix="octobench-reproduce-") as tmp:
            diff = compare(METRIC_ROWS.read(run_dir / "metrics.parquet"), rerun(run_dir, manifest, Path(tmp)))
        if diff.empty:
            print(f"identical: {run_dir}")
        else:
            differing += 1
            print(f"DIFFERS ({len(diff)} rows): {run_dir}")
            print(diff.head(12).to_string(index=False))
    print(f"{len(args.runs) - differing} of {len(args.runs)} runs reproduced exactly")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
