"""The explicit registries: every method and benchmark of the suite, by name.

Adding a method is one line here plus its folder; modules are imported only when used, so one
method's import cost (or a GPU-only dependency) never touches another's jobs.
"""

from __future__ import annotations

import importlib
from functools import cache

from methods.core.api import Benchmark, Method

METHODS: dict[str, str] = {
    "cat": "methods.cat",
    "bread": "methods.bread",
    "cot2": "methods.cot2",
    "tldr": "methods.tldr",
    "ssa": "methods.ssa",
    "ttt": "methods.ttt",
    "cap": "methods.cap",
    "fedyolo": "methods.fedyolo",
}

BENCHMARKS: dict[str, str] = {
    "mqar": "benchmarks.mqar",
    "chain_reasoning": "benchmarks.chain_reasoning",
    "mnns": "benchmarks.mnns",
    "prontoqa": "benchmarks.prontoqa",
    "prosqa": "benchmarks.prosqa",
    "verbose_sum": "benchmarks.verbose_sum",
    "copying": "benchmarks.copying",
    "selective_copying": "benchmarks.selective_copying",
    "ngram_recall": "benchmarks.ngram_recall",
    "passkey": "benchmarks.passkey",
    "lm_text": "benchmarks.lm_text",
    "lm_harness": "benchmarks.lm_harness",
    "icl_regression": "benchmarks.icl_regression",
    "tabular_icl": "benchmarks.tabular_icl",
    "lt_gmm": "benchmarks.lt_gmm",
    "lt_digits": "benchmarks.lt_digits",
    "lt_mnist1d": "benchmarks.lt_mnist1d",
    "cifar_lt": "benchmarks.cifar_lt",
    "federated_vision": "benchmarks.federated_vision",
    "math_reasoning": "benchmarks.math_reasoning",
}


class UnknownName(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


@cache
def get_method(name: str) -> Method:
    if name not in METHODS:
        raise UnknownName(f"unknown method '{name}'; known: {', '.join(sorted(METHODS))}")
    return importlib.import_module(METHODS[name]).METHOD


@cache
def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise UnknownName(f"unknown benchmark '{name}'; known: {', '.join(sorted(BENCHMARKS))}")
    return importlib.import_module(BENCHMARKS[name]).BENCHMARK
