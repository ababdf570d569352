"""Competition math with a reasoning model's ``<think> ... </think> answer`` responses (TLDR's paper scale).

TLDR (arXiv 2505.07961, Sec. 5) evaluates on MATH500, AMC, AIME24 and OlympiadBench; this benchmark loads
them by hub id (``datasets``) or from a local jsonl with the same fields, plus a training pool for TLDR's
RL prompts whose first ``num_val`` shuffled problems are the validation split (where the TS scale and the
budget-forcing budget are tuned; never on an evaluation set). Worked example (one jsonl row)::

    {"problem": "What is $1+1$?", "answer": "2"}
    response: "<think> 1+1 is 2. Wait, check: 1+1=2. </think> The answer is $\\boxed{2}$."  -> correct

Scoring: the text after the first ``</think>`` is parsed and checked against the reference answer with
``math-verify``; a response that never ends thinking is wrong. Token counts are the response's tokens
(thinking + answer), counted by the method that generated them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.token_use import token_use_metric_docs, token_use_metrics
from methods.core.api import Benchmark
from methods.core.seeding import numpy_rng

# Hub ids of the paper's evaluation sets and of the RL prompt pool: (id, config, split, problem, answer).
PAPER_DATASETS: dict[str, tuple[str, str | None, str, str, str]] = {
    "math500": ("HuggingFaceH4/MATH-500", None, "test", "problem", "answer"),
    "aime24": ("HuggingFaceH4/aime_2024", None, "train", "problem", "answer"),
    "amc": ("AI-MO/aimo-validation-amc", None, "train", "problem", "answer"),
    "olympiadbench": ("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train", "question", "final_answer"),
    # RL prompts (problem + final answer); its held-out head is the validation split.
    "deepscaler": ("agentica-org/DeepScaleR-Preview-Dataset", None, "train", "problem", "answer"),
}


@dataclass
class MathProblem:
    problem: str
    answer: str


@dataclass
class MathReasoningArgs:
    eval_sets: list[str] = field(default_factory=lambda: ["math500", "amc", "aime24", "olympiadbench"])
    train_set: str = "deepscaler"  # a PAPER_DATASETS name, a hub id or a local jsonl
    num_val: int = 200  # held out from train_set (shuffled by the data seed): TS / budget tuning
    num_train: int | None = None  # cap on RL prompts (None: the rest of train_set)
    max_per_eval_set: int | None = None  # cap per evaluation set (None: all; smaller for quick checks)


def _is_local(source: str) -> bool:
    return source.endswith(".jsonl") or source.startswith((".", "/")) or Path(source).exists()


def load_math_problems(source: str, limit: int | None = None, problem_field: str = "problem",
                       answer_field: str = "answer") -> list[MathProblem]:
    """Problems from a local jsonl, a paper dataset name (``math500``...) or any hub id."""
    if source in PAPER_DATASETS:
        hub_id, config, split, problem_field, answer_field = PAPER_DATASETS[source]
        rows: Any = _hub_rows(hub_id, config, split)
    elif _is_local(source):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no dataset file at {source} (give a .jsonl, a hub id or one of "
                                    f"{', '.join(PAPER_DATASETS)})")
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        rows = _hub_rows(source, None, "test")
    problems = []
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            break
        if problem_field not in row or answer_field not in row:
            raise KeyError(f"{source} row {i} lacks '{problem_field}' or '{answer_field}'; has {sorted(row)}")
        answer = row[answer_field]
        answer = answer[0] if isinstance(answer, list) else answer
        problems.append(MathProblem(str(row[problem_field]), str(answer)))
    return problems


def _hub_rows(hub_id: str, config: str | None, split: str) -> Any:  # pragma: no cover - needs the hub
    from datasets import load_dataset

    return load_dataset(hub_id, config, split=split)


def set_name(source: str) -> str:
    """A short row-friendly name: the paper name, or a local file's stem."""
    return source if source in PAPER_DATASETS else Path(source).stem.replace("/", "_")


def load(args: MathReasoningArgs, seed: int) -> dict[str, Any]:
    """``train`` / ``val`` (a seeded shuffle of ``train_set``) and ``test``: {set name: problems}."""
    if not args.eval_sets:
        raise ValueError("math_reasoning needs at least one eval set")
    pool = load_math_problems(args.train_set)
    if len(pool) <= args.num_val:
        raise ValueError(f"train_set {args.train_set} has {len(pool)} problems; need more than num_val "
                         f"{args.num_val}")
    order = numpy_rng(seed).permutation(len(pool))
    val = [pool[i] for i in order[:args.num_val]]
    train = [pool[i] for i in order[args.num_val:]]
    if args.num_train is not None:
        train = train[:args.num_train]
    test = {set_name(s): load_math_problems(s, args.max_per_eval_set) for s in args.eval_sets}
    return {"train": train, "val": val, "test": test}


def is_correct(response: str, problem: MathProblem, end_think: str = "</think>") -> bool:
    """``math-verify`` on the text after the end of thinking (no answer without it)."""
    from math_verify import parse, verify

    if end_think not in response:
        return False
    guess = parse(response.split(end_think, 1)[1])
    return bool(guess) and bool(verify(parse(f"${problem.answer}$"), guess))


def score(responses: list[str], problems: list[MathProblem], lengths: torch.Tensor,
          end_think: str = "</think>") -> dict[str, float]:
    """Accuracy by ``math-verify``, and token use (``lengths``: tokens per response)."""
    if len(responses) != len(problems) or len(lengths) != len(problems):
        raise ValueError(f"{len(responses)} responses / {len(lengths)} lengths for {len(problems)} problems")
    right = torch.tensor([is_correct(text, p, end_think) for text, p in zip(responses, problems, strict=True)],
                         dtype=torch.bool)
    ended = torch.tensor([end_think in t for t in responses], dtype=torch.bool)
    return token_use_metrics(right, lengths, ended)


BENCHMARK = Benchmark(
    name="math_reasoning",
    doc=__doc__ or "",
    data_args=MathReasoningArgs,
    load=load,
    score=score,
    metrics=token_use_metric_docs("share of problems answered right (math-verify)"),
)
