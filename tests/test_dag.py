"""End to end: the Snakemake DAG on a tiny config, in a copy of the repository."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from methods.core.tables import CLAIMS, LEADERBOARD

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
pytestmark = pytest.mark.slow


@pytest.fixture
def workdir(tmp_path, tiny_config):
    for name in ("Snakefile", "workflows", "config", "methods", "benchmarks"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    (tmp_path / "results").mkdir()
    shutil.copy(REPO / "results" / "paper_claims.csv", tmp_path / "results")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_config))
    return tmp_path


def job_env() -> dict[str, str]:
    """One torch thread per job, and this venv's ``python`` first on PATH (the jobs' shell command)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def snakemake(workdir, *args, **kw):
    return subprocess.run([*SNAKEMAKE, "--cores", "2", *args], cwd=workdir, env=job_env(), capture_output=True,
                          text=True, timeout=600, **kw)


def test_dag_builds_the_leaderboard_and_a_rerun_does_nothing(workdir):
    first = snakemake(workdir, "--configfile", "tiny.yaml")
    assert first.returncode == 0, first.stderr[-3000:]
    board = LEADERBOARD.read(workdir / "results" / "leaderboard.parquet")
    finals = board[board["step"].isna() & (board["metric"] == "accuracy") & (board["split"] == "test")]
    assert set(finals["variant"]) == {"attention_1l", "cat_1l"}
    assert (finals["n"] == 2).all()
    claims = CLAIMS.read(workdir / "results" / "claims.parquet")
    assert set(claims["scale"]) == {"tiny"}
    for run in (workdir / "results" / "runs" / "tiny" / "mqar" / "cat").glob("*/seed*"):
        assert {"metrics.parquet", "manifest.json", "samples.jsonl"} <= {p.name for p in run.iterdir()}
    run = next((workdir / "results" / "runs" / "tiny" / "mqar" / "cat").glob("cat_1l*/seed1"))
    again = subprocess.run([sys.executable, "-m", "methods.core.reproduce", str(run)], cwd=workdir,
                           capture_output=True, text=True, env=job_env())
    assert again.returncode == 0 and "1 of 1 runs reproduced exactly" in again.stdout, again.stdout + again.stderr
    second = snakemake(workdir, "--configfile", "tiny.yaml")
    assert second.returncode == 0
    assert "Nothing to be done" in second.stdout + second.stderr
    report = snakemake(workdir, "--configfile", "tiny.yaml", "--report", "report.html")
    assert report.returncode == 0, report.stderr[-3000:]
    html = (workdir / "report.html").read_text(errors="replace")
    assert "leaderboard" in html and "mqar.png" in html  # the leaderboard table and the benchmark's plot


def test_a_new_only_selection_runs_its_jobs_and_rebuilds_the_summary(workdir, tiny_config):
    """`only=` one benchmark, then another: the second run must run its own jobs, not report nothing to do."""
    benches = tiny_config["methods"]["cat"]["benchmarks"]
    benches["mqar_b"] = {**benches["mqar"], "benchmark": "mqar"}
    tiny_config["replicates"] = 1
    (workdir / "two.yaml").write_text(yaml.safe_dump(tiny_config))
    for only in ("cat:mqar", "cat:mqar_b"):
        done = snakemake(workdir, "--configfile", "two.yaml", "--config", f"only={only}")
        assert done.returncode == 0, done.stderr[-3000:]
        board = LEADERBOARD.read(workdir / "results" / "leaderboard.parquet")
        assert set(board["benchmark"]) == {only.split(":")[1]}
    again = snakemake(workdir, "--configfile", "two.yaml", "--config", "only=cat:mqar_b")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_config_mistakes_stop_the_dag_with_one_line_naming_them(workdir):
    bad = snakemake(workdir, "-n", "--configfile", "tiny.yaml", "--config", "replicatez=3")
    assert bad.returncode != 0
    lines = [ln for ln in bad.stderr.splitlines() if "octobench config error" in ln]
    assert lines == ["octobench config error: config key 'replicatez' is not allowed; allowed here: device, "
                     "dtype, methods, only, replicates, resources, scale, seed, threads"]
    unknown = snakemake(workdir, "-n", "--configfile", "tiny.yaml", "--config", "only=cot3")
    assert "method 'cot3' is not configured" in unknown.stderr


def test_a_killed_run_reruns_to_a_complete_valid_table(workdir, tiny_config):
    # The first run's MQAR jobs are far too long to finish, so Ctrl-C always lands mid-job however fast
    # the machine is; the rerun uses the normal tiny config and must rebuild everything cleanly.
    tiny_config["methods"]["cat"]["benchmarks"]["mqar"]["args"]["steps"] = 10**6
    (workdir / "endless.yaml").write_text(yaml.safe_dump(tiny_config))
    # SIGINT back to its default in Snakemake (and so in its jobs): a test run started in the background of a
    # non-interactive shell inherits SIGINT ignored, and then Ctrl-C would kill nothing (seen once: the run
    # and its 10**6-step jobs outlived the test).
    proc = subprocess.Popen([*SNAKEMAKE, "--cores", "2", "--configfile", "endless.yaml"], cwd=workdir, env=job_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    logs = workdir / "results" / "logs" / "tiny"
    deadline = time.time() + 300
    while time.time() < deadline and not any("start on" in p.read_text() for p in logs.glob("**/*.log")):
        assert proc.poll() is None, "snakemake exited before any job started"
        time.sleep(0.5)
    assert proc.poll() is None, "no job logged its start within 300 s"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: Snakemake and the running jobs die mid-job
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # leave no endless jobs behind a failing test
        raise
    assert not (workdir / "results" / "leaderboard.parquet").exists()
    assert not any((workdir / "results" / "runs").glob("**/manifest.json"))
    again = snakemake(workdir, "--configfile", "tiny.yaml")
    assert again.returncode == 0, again.stderr[-3000:]
    board = LEADERBOARD.read(workdir / "results" / "leaderboard.parquet")
    assert (board[board["step"].isna()]["n"] == 2).all()


@pytest.mark.parametrize("profile", ["slurm", "local-gpu"])
def test_paper_grid_dry_runs_with_each_profile(workdir, profile):
    out = snakemake(workdir, "-n", "--workflow-profile", f"workflows/profiles/{profile}",
                    "--configfile", "config/paper.yaml")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "results/runs/paper/mqar_l128/cat/cat_1l_d_model64_lr0p00215/seed0" in out.stdout
