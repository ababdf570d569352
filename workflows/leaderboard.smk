# Aggregation: this scale's runs -> results/scales/<scale>/ (table, claims, plots for --report);
# then every scale found on disk -> results/leaderboard.parquet and results/claims.parquet.

BENCHMARKS_RUN = sorted({job.benchmark for job in RUNS.values()})
TABLE_SCHEMAS = {schema.name: list(schema.columns) for schema in (LEADERBOARD, CLAIMS)}
# The run set as a file, rewritten only when it changes: after `only=cat`, a run with `only=ssa` finds it
# newer than the summary and rebuilds it (and so runs the new jobs). Params alone did not trigger that:
# Snakemake 9.16 found the summary up to date although its new inputs were missing.
RUN_SET = write_if_changed(f"results/scales/{SCALE}/run_set.txt", "".join(f"{run}\n" for run in sorted(RUNS)))


rule summarise:
    """Mean, std, 95% CI and n over seeds per (benchmark, method, variant, split, metric, step)."""
    input:
        runs=sorted(RUNS),
        run_set=RUN_SET,
        claims="results/paper_claims.csv",
    output:
        board="results/scales/{scale}/leaderboard.parquet",
        claims="results/scales/{scale}/claims.parquet",
        table=report("results/scales/{scale}/leaderboard.html", category="Leaderboard"),
        plots=report(
            expand("results/scales/{{scale}}/plots/{benchmark}.png", benchmark=BENCHMARKS_RUN),
            category="Plots",
        ),
    params:
        benchmarks=BENCHMARKS_RUN,
        # the run set as a param: widening or narrowing `only=` changes it, so the summary is rebuilt
        runs=sorted(RUNS),
        # likewise the table schemas: a new column rebuilds the summaries instead of failing on read
        schemas=TABLE_SCHEMAS,
    log:
        "results/logs/{scale}/summarise.log",
    threads: 1
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m methods.core.report {input.runs:q} --claims {input.claims:q} "
        "--out results/scales/{wildcards.scale} --benchmarks {params.benchmarks} > {log:q} 2>&1"


rule leaderboard:
    """One table across scales (the dashboard's input); other scales' summaries are kept as they are."""
    input:
        board=f"results/scales/{SCALE}/leaderboard.parquet",
        claims=f"results/scales/{SCALE}/claims.parquet",
    output:
        board="results/leaderboard.parquet",
        claims="results/claims.parquet",
    params:
    log:
        "results/logs/leaderboard.log",
    threads: 1
    resources:
        gpu=0,
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m methods.core.merge --out-board {output.board:q} --out-claims {output.claims:q} "
        "> {log:q} 2>&1"
