# Config validation and the job table every rule reads from.
import sys

from snakemake.utils import validate

from methods.core.config import ConfigError, resolve_jobs, validate_schema


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
PYTHON = sys.executable
RUNS = {job.out: job for job in JOBS if job.kind == "run"}
STAGES = {job.out: job for job in JOBS if job.kind == "stage"}


wildcard_constraints:
    scale=r"[a-z][a-z0-9_-]*",
    benchmark=r"[a-z][a-z0-9_]*",
    method=r"[a-z][a-z0-9_]*",
    name=r"[a-z][a-z0-9_]*",
    hash=r"[0-9a-f]{16}",
    replicate=r"\d+",


def job_for(table, path):
    if path not in table:
        raise ValueError(f"{path} is not a job of the current config")
    return table[path]
