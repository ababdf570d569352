"""The two contracts every method and benchmark implements.

A **method** (``methods/<name>/__init__.py`` exports ``METHOD``) names its variant families, the typed
arguments each family takes, optional shared *stages* (e.g. a pretrained model several variants start
from), and one entry point ``run(ctx)`` that trains, evaluates and records rows through ``ctx``.

A **benchmark** (``benchmarks/<name>.py`` exports ``BENCHMARK``) knows its data (built from a seed, so
every method sees the same split in a replicate) and its metrics. Methods never score a benchmark
their own way: they call ``ctx.benchmark.score(...)``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    doc: str = ""


@dataclass(frozen=True)
class Benchmark:
    """A task: ``load(data_args, seed)`` builds splits; ``score(...)`` turns predictions into metrics."""

    name: str
    doc: str
    data_args: type  # a dataclass: the benchmark's knobs with defaults
    load: Callable[[Any, int], Any]
    score: Callable[..., dict[str, float]]
    metrics: tuple[Metric, ...]

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)


@dataclass(frozen=True)
class Family:
    """A variant family (the method itself or one baseline) and the typed arguments it takes."""

    name: str
    doc: str
    args: type  # a dataclass


@dataclass(frozen=True)
class Method:
    name: str
    paper: str
    families: Mapping[str, Family]
    run: Callable[[RunContext], None]
    benchmarks: tuple[str, ...]
    stages: Mapping[str, Family] = field(default_factory=dict)
    run_stage: Callable[[RunContext], None] | None = None
    metrics: tuple[Metric, ...] = ()  # method-level metrics (e.g. expert tokens used), beyond the benchmark's

    def higher_is_better(self, benchmark: Benchmark, metric: str) -> bool:
        for m in (*benchmark.metrics, *self.metrics):
            if m.name == metric:
                return m.higher_is_better
        known = sorted(m.name for m in (*benchmark.metrics, *self.metrics))
        raise KeyError(f"metric '{metric}' is declared neither by benchmark '{benchmark.name}' "
                       f"nor by method '{self.name}'; declared: {known}")


@dataclass
class RunContext:
    """Everything one job needs, and the recorder of its result rows."""

    scale: str
    benchmark_id: str  # the benchmark instance (config key) the rows are filed under
    benchmark: Benchmark
    method: Method
    variant: str  # the instance id, e.g. "cat_1l"
    family: str  # the family it instantiates, e.g. "cat"
    replicate: int
    seed: int
    data_seed: int
    args: Any  # the family's args dataclass, resolved
    data_args: Any  # the benchmark's args dataclass, resolved
    device: torch.device
    dtype: torch.dtype
    out_dir: Path  # where the job may write artifacts (checkpoints); moved into place atomically
    inputs: dict[str, Path] = field(default_factory=dict)  # stage name -> that stage's output dir
    rows: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    _started: float = field(default_factory=time.perf_counter)

    def record(self, metric: str, value: float, *, split: str = "test", step: float | None = None) -> None:
        """Record one measured number; ``step`` makes it a point of a curve."""
        self.rows.append(
            {
                "scale": self.scale,
                "benchmark": self.benchmark_id,
                "method": self.method.name,
                "variant": self.variant,
                "seed": self.replicate,
                "split": split,
                "metric": metric,
                "value": float(value),
                "higher_is_better": self.method.higher_is_better(self.benchmark, metric),
                "step": None if step is None else float(step),
            }
        )

    def record_all(self, metrics: Mapping[str, float], *, split: str = "test", step: float | None = None) -> None:
        for name, value in metrics.items():
            self.record(name, value, split=split, step=step)

    def sample(self, **example: Any) -> None:
        """Keep one per-example prediction for samples.jsonl."""
        self.samples.append(example)

    def log(self, message: str) -> None:
        """Progress line with elapsed time; goes to the job's log under Snakemake."""
        elapsed = time.perf_counter() - self._started
        print(f"[{self.method.name}/{self.benchmark_id}/{self.variant}/seed{self.replicate} "
              f"{elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)

    def load_data(self) -> Any:
        return self.benchmark.load(self.data_args, self.data_seed)


def dataclass_to_dict(obj: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(obj), default=str))
