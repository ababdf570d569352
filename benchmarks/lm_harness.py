"""Fine-tuning corpus + lm-evaluation-harness suite, for SSA on pretrained LMs (arXiv 2411.12892, Sec. 5).

``load`` gives the fine-tuning documents (a hub dataset such as WikiText-103 / OpenWebText, or a local
jsonl) and the held-out documents for perplexity; the method tokenises them with its model's
tokenizer. After fine-tuning, the method runs lm-eval on ``tasks`` (``include_path`` adds local task
YAMLs, e.g. a ``dataset_path: json`` task over a local jsonl) and ``score`` flattens the harness's
results into ``<task>_<metric>`` rows, keeping the metrics declared below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from methods.core.api import Benchmark, Metric


@dataclass
class LMHarnessArgs:
    dataset: str = "Salesforce/wikitext"  # hub id, or a local .json/.jsonl path
    dataset_config: str | None = "wikitext-103-raw-v1"
    train_split: str = "train"
    eval_split: str = "validation"
    text_field: str = "text"
    max_train_docs: int = 0  # 0 = all
    max_eval_docs: int = 2000
    tasks: list[str] = field(default_factory=lambda: ["wikitext", "lambada_openai", "piqa", "hellaswag",
                                                      "winogrande", "arc_easy", "arc_challenge"])
    include_path: str | None = None
    limit: float | None = None  # lm-eval's per-task example limit (None = all)


@dataclass
class HarnessData:
    train_texts: list[str]
    eval_texts: list[str]
    args: LMHarnessArgs


def load(args: LMHarnessArgs, seed: int) -> HarnessData:
    from methods.ssa.pretrained import load_texts

    del seed  # the corpus and the harness's tasks are fixed; training order comes from the run seed
    source = (args.dataset, args.dataset_config)
    train = load_texts(*source, args.train_split, args.text_field, args.max_train_docs)
    evaluation = load_texts(*source, args.eval_split, args.text_field, args.max_eval_docs)
    return HarnessData(train, evaluation, args)


# (task, lm-eval metric key) -> our metric name; higher is better unless it is a perplexity.
HARNESS_METRICS: dict[tuple[str, str], str] = {
    ("wikitext", "word_perplexity,none"): "wikitext_word_perplexity",
    ("lambada_openai", "perplexity,none"): "lambada_openai_perplexity",
    ("lambada_openai", "acc,none"): "lambada_openai_acc",
    ("piqa", "acc,none"): "piqa_acc",
    ("hellaswag", "acc_norm,none"): "hellaswag_acc_norm",
    ("winogrande", "acc,none"): "winogrande_acc",
    ("arc_easy", "acc,none"): "arc_easy_acc",
    ("arc_challenge", "acc_norm,none"): "arc_challenge_acc_norm",
    ("octobench_local_choice", "acc,none"): "local_choice_acc",  # the offline task the tests define
}


def score(results: dict[str, dict[str, Any]] | torch.Tensor, split: Any = None) -> dict[str, float]:
    """lm-eval ``results`` -> our metrics; or a (docs, tokens) NLL tensor -> held-out perplexity."""
    if isinstance(results, torch.Tensor):
        loss = results.double().mean().item()
        return {"perplexity": math.exp(loss), "loss": loss}
    out = {name: float(results[task][key]) for (task, key), name in HARNESS_METRICS.items()
           if task in results and key in results[task]}
    if not out and results:
        raise ValueError(f"none of the harness results maps to a declared metric: {sorted(results)}")
    return out


BENCHMARK = Benchmark(
    name="lm_harness",
    doc=__doc__ or "",
    data_args=LMHarnessArgs,
    load=load,
    score=score,
    metrics=(Metric("perplexity", False, "held-out token perplexity of the fine-tuning corpus"),
             Metric("loss", False, "held-out token NLL (nats)"),
             *(Metric(name, "perplexity" not in name, f"lm-eval {task} {key}")
               for (task, key), name in HARNESS_METRICS.items())),
)
