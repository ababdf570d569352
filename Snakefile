# octobench: every (benchmark, method, variant, seed) of the configured grid is one job; one rule
# aggregates their tidy rows into the leaderboard. Science code lives in methods/ and benchmarks/.
#   snakemake --cores 2                               the default (smoke) scale
#   snakemake --cores 2 --config only=cat             one method
#   snakemake --configfile config/paper.yaml --workflow-profile workflows/profiles/slurm

from snakemake.utils import min_version

min_version("9.0")


# The default scale. A --configfile replaces it rather than being merged into it, so a paper run
# never inherits smoke blocks; --config KEY=VALUE overrides apply on top of either.
if "methods" not in config:

    configfile: "config/smoke.yaml"


include: "workflows/common.smk"
include: "workflows/jobs.smk"
include: "workflows/leaderboard.smk"


rule all:
    input:
        "results/leaderboard.parquet",
        "results/claims.parquet",
    default_target: True
