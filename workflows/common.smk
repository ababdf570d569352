# Config validation and the job table every rule reads from.
import os
import sys
from pathlib import Path

from snakemake.utils import validate

from methods.core.atomic import write_text
from methods.core.config import ConfigError, resolve_jobs, validate_schema
from methods.core.tables import CLAIMS, LEADERBOARD


def _fail(message):
    # One line naming the offending key, instead of a traceback.
    print(f"octobench config error: {message}", file=sys.stderr)
    sys.exit(1)


try:
    validate_schema(config)  # one line naming the key; snakemake's own message drops it
    validate(config, "../config/schema.yaml")  # fills in the schema's defaults
    JOBS = resolve_jobs(config)
except ConfigError as err:
    _fail(str(err))

SCALE = config["scale"]
# Jobs run `python` from the environment that runs Snakemake (a venv need not be activated).
shell.prefix(f"export PATH={os.path.dirname(sys.executable)}:$PATH; ")
RUNS = {job.out: job for job in JOBS if job.kind == "run"}
STAGES = {job.out: job for job in JOBS if job.kind == "stage"}


wildcard_constraints:
    scale=r"[a-z][a-z0-9_-]*",
    benchmark=r"[a-z][a-z0-9_]*",
    method=r"[a-z][a-z0-9_]*",
    name=r"[a-z][a-z0-9_]*",
    hash=r"[0-9a-f]{16}",
    replicate=r"\d+",


# Benchmarks whose runs start first (`run_first: true`, long jobs): rule run_first takes them, rule run
# the rest. The split is by the benchmark wildcard because Snakemake's priorities are per rule.
FIRST = sorted({name for method in config["methods"].values()
                for name, block in method["benchmarks"].items() if block.get("run_first")})
FIRST_BENCHMARK = "|".join(FIRST) or "(?!)"  # (?!) matches nothing
OTHER_BENCHMARK = rf"(?!(?:{FIRST_BENCHMARK})/)[a-z][a-z0-9_]*"
RUN_DIR = "results/runs/{scale}/{benchmark}/{method}/{name}/seed{replicate}"
STAGE_DIR = "results/cache/{scale}/{benchmark}/{method}/{name}/{hash}/seed{replicate}"


def write_if_changed(path, text):
    """Write ``text`` to ``path`` (atomically) unless it already holds it, so its mtime marks a change."""
    if not os.path.isfile(path) or Path(path).read_text() != text:
        write_text(path, text)
    return path


def job_for(table, path):
    if path not in table:
        raise ValueError(f"{path} is not a job of the current config")
    return table[path]


def run_spec(wildcards):
    return job_for(RUNS, RUN_DIR.format(**wildcards))


def stage_spec(wildcards):
    return job_for(STAGES, STAGE_DIR.format(**wildcards))
