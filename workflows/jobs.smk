# One job per (benchmark, method, variant, replicate); shared stages (pretrained models, SFT
# checkpoints) are jobs of their own that variants depend on through `after:`. Whenever a core is free,
# stages start first (they head the longest chains), then the runs of `run_first` benchmarks, then the
# rest: critical path first, so no long job is left to run alone at the end.

rule run:
    """Train and evaluate one variant for one seed; writes metrics.parquet, manifest.json, samples.jsonl."""
    input:
        lambda wc: list(run_spec(wc).inputs.values()),
    output:
        directory(RUN_DIR),
    wildcard_constraints:
        benchmark=OTHER_BENCHMARK,
    params:
        spec=lambda wc: run_spec(wc).to_json(),
    log:
        "results/logs/{scale}/{benchmark}/{method}/{name}/seed{replicate}.log",
    threads: config["threads"]
    resources:
        gpu=lambda wc: run_spec(wc).resources.get("gpu", 0),
        mem_mb=lambda wc: run_spec(wc).resources.get("mem_mb", 2000),
        runtime=lambda wc: run_spec(wc).resources.get("runtime", 30),
    shell:
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} "
        "python -m methods.core.job --spec {params.spec:q} > {log:q} 2>&1"


use rule run as run_first with:
    wildcard_constraints:
        benchmark=FIRST_BENCHMARK,
    priority: 5


rule stage:
    """A shared step (e.g. a pretrained model) that several variants start from."""
    input:
        lambda wc: list(stage_spec(wc).inputs.values()),
    output:
        directory(STAGE_DIR),
    priority: 10
    params:
        spec=lambda wc: stage_spec(wc).to_json(),
    log:
        "results/logs/{scale}/{benchmark}/{method}/stage_{name}/{hash}/seed{replicate}.log",
    threads: config["threads"]
    resources:
        gpu=lambda wc: stage_spec(wc).resources.get("gpu", 0),
        mem_mb=lambda wc: stage_spec(wc).resources.get("mem_mb", 2000),
        runtime=lambda wc: stage_spec(wc).resources.get("runtime", 30),
    shell:
        "OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} "
        "python -m methods.core.job --spec {params.spec:q} > {log:q} 2>&1"
