"""Paper profile: a distilled reasoning model on MATH500 / AMC / AIME24 / OlympiadBench (by hub id).

The same sampler and stop controls as smoke (``generation.sample`` with TS / budget forcing) run on a
transformers model; answers are checked with ``math-verify``. vLLM is imported lazily and serves plain
sampling and s1-style budget forcing (generate up to the budget, stopping at ``</think>``, then append
it and let the model answer), where per-step logit control is not needed; TS uses the transformers
path. Everything loads from a hub id or a local path / jsonl, so it is tested offline on tiny models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from methods.tldr.generation import SpecialTokens

# Hub ids of the paper's evaluation sets (arXiv 2505.07961, Sec. 5): (id, config, split, problem, answer).
PAPER_DATASETS: dict[str, tuple[str, str | None, str, str, str]] = {
    "math500": ("HuggingFaceH4/MATH-500", None, "test", "problem", "answer"),
    "aime24": ("HuggingFaceH4/aime_2024", None, "train", "problem", "answer"),
    "amc": ("AI-MO/aimo-validation-amc", None, "train", "problem", "answer"),
    "olympiadbench": ("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train", "question", "final_answer"),
}
PAPER_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"  # the distilled small reasoning model
LEVEL_INSTRUCTIONS = {  # TLDR's level prompts (our wording)
    "any": "",
    "short": "Think briefly.",
    "medium": "Think moderately.",
    "long": "Think thoroughly.",
}


@dataclass
class MathProblem:
    problem: str
    answer: str


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


def load_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def special_tokens(tokenizer: Any, end_think: str = "</think>", wait: str = "Wait") -> SpecialTokens:
    """Token ids the stop controls need, read from the tokenizer (errors name a missing one)."""
    def single(text: str) -> int:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if not ids:
            raise ValueError(f"tokenizer cannot encode {text!r}")
        return ids[0]

    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("tokenizer has no eos token; set one")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return SpecialTokens(end_think=single(end_think), wait=single(wait), eos=eos, pad=pad)


def encode_prompts(tokenizer: Any, problems: list[MathProblem], level: str = "any"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts (left-aligned, pad after) and lengths; the chat template when the tokenizer has one."""
    if level not in LEVEL_INSTRUCTIONS:
        raise ValueError(f"unknown level '{level}'; known: {', '.join(LEVEL_INSTRUCTIONS)}")
    suffix = LEVEL_INSTRUCTIONS[level]
    rows = []
    for p in problems:
        text = f"{p.problem} {suffix}".strip()
        if getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                add_generation_prompt=True, tokenize=True)
            ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        else:
            ids = tokenizer.encode(text, add_special_tokens=True)
        rows.append(list(ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(r) for r in rows)
    prompts = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, r in enumerate(rows):  # once per prompt at load time, not per token
        prompts[i, :len(r)] = torch.tensor(r)
    return prompts, torch.tensor([len(r) for r in rows])


def score_math(responses: list[str], problems: list[MathProblem], lengths: torch.Tensor,
               end_think: str = "</think>") -> dict[str, float]:
    """Accuracy by ``math-verify`` on the text after the end of thinking, and token use."""
    from math_verify import parse, verify

    correct = []
    for text, problem in zip(responses, problems, strict=True):
        answer_text = text.split(end_think, 1)[1] if end_think in text else ""
        gold = parse(f"${problem.answer}$")
        guess = parse(answer_text)
        correct.append(bool(guess) and bool(verify(gold, guess)))
    right = torch.tensor(correct)
    length = lengths.float()
    accuracy = right.float().mean().item()
    metrics = {"accuracy": accuracy, "mean_tokens": length.mean().item(),
               "accuracy_per_1k_tokens": 1000.0 * accuracy / max(length.mean().item(), 1e-9)}
    if right.any():
        metrics["mean_tokens_correct"] = length[right].mean().item()
    if (~right).any():
        metrics["mean_tokens_wrong"] = length[~right].mean().item()
    return metrics


class VLLMGenerator:  # pragma: no cover - GPU only
    """vLLM sampling, with s1 budget forcing done in two calls (think up to the budget, then answer)."""

    def __init__(self, model: str, **llm_kwargs: Any) -> None:
        from vllm import LLM  # lazy: a GPU extra

        self.llm = LLM(model=model, **llm_kwargs)

    def generate(self, prompts: list[str], max_tokens: int, temperature: float, seed: int,
                 max_think: int | None = None, end_think: str = "</think>", answer_tokens: int = 512
                 ) -> list[str]:
        from vllm import SamplingParams

        if max_think is None:
            outs = self.llm.generate(prompts, SamplingParams(max_tokens=max_tokens, temperature=temperature,
                                                             seed=seed))
            return [o.outputs[0].text for o in outs]
        think = self.llm.generate(prompts, SamplingParams(max_tokens=max_think, temperature=temperature,
                                                          seed=seed, stop=[end_think]))
        thoughts = [o.outputs[0].text + end_think for o in think]
        answers = self.llm.generate([p + t for p, t in zip(prompts, thoughts, strict=True)],
                                    SamplingParams(max_tokens=answer_tokens, temperature=temperature,
                                                   seed=seed))
        return [t + a.outputs[0].text for t, a in zip(thoughts, answers, strict=True)]
