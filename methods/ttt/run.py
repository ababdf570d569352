"""The TTT method: its variant families, its pretraining stage and the entry points per benchmark."""

from __future__ import annotations

from methods.core.api import Family, Method, Metric, RunContext
from methods.ttt.tabular import (
    HGBArgs,
    LogisticArgs,
    PretrainArgs,
    TabPFNArgs,
    TabPFNTTTArgs,
    run_pretraining,
    run_tabular,
)
from methods.ttt.theory import LinearICLArgs, LinearTTTArgs, run_theory

FAMILIES = {
    "linear_icl": Family("linear_icl", "pretrained one-layer linear attention, in-context only",
                         LinearICLArgs),
    "linear_ttt": Family("linear_ttt", "the same model after one rank-one TTT gradient step on k rows",
                         LinearTTTArgs),
    "tabpfn": Family("tabpfn", "TabPFNClassifier(model_path=...) in context, no weight update", TabPFNArgs),
    "tabpfn_ttt": Family("tabpfn_ttt", "TabPFN fine-tuned on the prompt's own rows (leave-some-out), "
                         "then in context", TabPFNTTTArgs),
    "logistic_regression": Family("logistic_regression", "L2 logistic regression, C by CV", LogisticArgs),
    "hist_gradient_boosting": Family("hist_gradient_boosting", "sklearn HistGradientBoosting, tuned by CV",
                                     HGBArgs),
}

STAGES = {
    "prior_pretraining": Family("prior_pretraining", "pretrain a small TabPFN v2 architecture on a synthetic "
                                "classification prior; saved in tabpfn's checkpoint format", PretrainArgs),
}

BENCHMARK_FAMILIES = {
    "icl_regression": {"linear_icl", "linear_ttt"},
    "tabular_icl": {"tabpfn", "tabpfn_ttt", "logistic_regression", "hist_gradient_boosting"},
}


def run(ctx: RunContext) -> None:
    allowed = BENCHMARK_FAMILIES[ctx.benchmark.name]
    if ctx.family not in allowed:
        raise ValueError(f"family '{ctx.family}' does not run on {ctx.benchmark.name}; "
                         f"use one of {sorted(allowed)}")
    (run_theory if ctx.benchmark.name == "icl_regression" else run_tabular)(ctx)


METHOD = Method(
    name="ttt",
    paper="arXiv 2503.11842",
    families=FAMILIES,
    run=run,
    benchmarks=("icl_regression", "tabular_icl"),
    stages=STAGES,
    run_stage=run_pretraining,
    metrics=(
        Metric("mse_vs_k", False, "query MSE vs the number k of TTT rows (step = k)"),
        Metric("mse_vs_context", False, "query MSE vs the context length (step = n)"),
        Metric("ttt_step_size", False, "TTT step size chosen on validation tasks"),
        Metric("relative_gain", True, "1 - MSE with TTT / MSE without, same test tasks"),
        Metric("shift_advantage", True, "relative gain on the least aligned split minus the most aligned"),
        Metric("accuracy_over_chance", True, "accuracy minus the test majority-class rate"),
        Metric("accuracy_gain", True, "accuracy with TTT minus without, same model and rows"),
        Metric("sample_size_reduction", True, "rows the no-TTT model needs to reach its accuracy at the largest "
               "size / rows TTT needs (matched accuracy)"),
        Metric("size_factor_at_n", True, "rows the no-TTT model needs to match TTT with n rows, / n"),
        Metric("ttt_steps_selected", False, "TTT steps chosen on the context (0 = no TTT)"),
    ),
)
