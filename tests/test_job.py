import json

import pandas as pd

from methods.core.config import resolve_jobs, validate_schema
from methods.core.job import run_job
from methods.core.tables import METRIC_ROWS


def one_job(config, tmp_path, name):
    validate_schema(config)
    job = next(j for j in resolve_jobs(config) if j.name == "cat_1l" and j.replicate == 0)
    job.out = str(tmp_path / name)
    return run_job(job)


def test_a_job_writes_rows_manifest_and_samples(tiny_config, tmp_path):
    out = one_job(tiny_config, tmp_path, "run")
    rows = METRIC_ROWS.read(out / "metrics.parquet")
    assert {"test", "test_2x"} <= set(rows["split"])
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("config_hash", "git_sha", "packages", "environment", "seed", "wall_seconds", "peak_rss_mb"):
        assert key in manifest
    assert manifest["job"]["args"]["n_layers"] == 1
    assert (out / "samples.jsonl").read_text().count("\n") > 0


def test_the_same_job_twice_gives_identical_rows_on_cpu(tiny_config, tmp_path):
    a = pd.read_parquet(one_job(tiny_config, tmp_path, "a") / "metrics.parquet")
    b = pd.read_parquet(one_job(tiny_config, tmp_path, "b") / "metrics.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_cpu_seconds_include_finished_child_processes():
    import subprocess
    import sys

    import torch

    from methods.core.provenance import resource_usage

    before = resource_usage(torch.device("cpu"))["cpu_seconds_children"]
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    after = resource_usage(torch.device("cpu"))
    assert after["cpu_seconds_children"] > before
    assert after["cpu_seconds"] >= after["cpu_seconds_children"]
