"""Paper profile loaders for BREAD (arXiv 2506.17211): Qwen2.5-Instruct students, s1K-style expert traces,
NuminaMath-CoT RL problems, MATH500 / AIME24 / AMC / OlympiadBench evaluation, ``math-verify`` reward.

Everything loads from a hub id or a local path / jsonl, so it is tested offline on tiny local models and
files (tests/test_bread_paper.py). Evaluation sets and the ``math-verify`` answer check are shared with
TLDR (``methods.tldr.paper.load_math_problems`` / ``PAPER_DATASETS``), imported here, not copied.

An expert trace is cut into *episodes* (the anchors BREAD branches from) at blank lines, the paragraph
boundaries of a written solution; ``episode_token_ends`` maps them to token positions so the branching
search (``methods.bread.branching``) can restart the student after the first j episodes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from methods.tldr.paper import PAPER_DATASETS, MathProblem, load_math_problems

# arXiv 2506.17211, Sec. 5: Qwen2.5-Instruct students; s1K traces for SFT; NuminaMath-CoT for RL.
PAPER_MODELS = {"qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B-Instruct", "qwen2.5-3b": "Qwen/Qwen2.5-3B-Instruct"}
SFT_DATASET = ("simplescaling/s1K-1.1", "train")
RL_DATASET = ("AI-MO/NuminaMath-CoT", "train")
EVAL_SETS = ("math500", "aime24", "amc", "olympiadbench")  # BREAD's evaluation sets (arXiv 2506.17211)
assert set(EVAL_SETS) <= set(PAPER_DATASETS), "every BREAD evaluation set has a loader in math_reasoning"

__all__ = ["EVAL_SETS", "ExpertProblem", "MathProblem", "PAPER_MODELS", "boxed_answer", "episode_token_ends",
           "load_eval_problems", "load_expert_problems", "load_student", "math_verify_rewards", "split_episodes"]


@dataclass
class ExpertProblem:
    """A training problem with the expert's solution trace and its final answer."""

    problem: str
    trace: str
    answer: str


def _is_local(source: str) -> bool:
    return source.endswith(".jsonl") or source.startswith((".", "/")) or Path(source).exists()


def _rows(source: str, split: str) -> Any:
    if _is_local(source):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no dataset file at {source} (give a .jsonl or a hub id)")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    from datasets import load_dataset  # pragma: no cover - needs the hub

    return load_dataset(source, split=split)  # pragma: no cover


def boxed_answer(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (balanced braces), as NuminaMath solutions write it."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed{") - 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1: j]
    return None


def load_expert_problems(source: str, limit: int | None = None) -> list[ExpertProblem]:
    """Problems with expert traces from an s1K-style or a NuminaMath-CoT-style source.

    s1K rows: ``question``, a reasoning trace (``deepseek_thinking_trajectory`` in s1K-1.1,
    ``thinking_trajectories`` (a list) in s1K) and ``solution`` (the reference answer).
    NuminaMath-CoT rows: ``problem`` and ``solution``; the answer is the last ``\\boxed{}`` of the solution.
    Names ``s1k`` and ``numina`` select the paper's hub datasets.
    """
    hub = {"s1k": SFT_DATASET, "numina": RL_DATASET}
    hub_id, split = hub.get(source, (source, "train"))
    out = []
    for i, row in enumerate(_rows(hub_id, split)):
        if limit is not None and len(out) >= limit:
            break
        if "question" in row:  # s1K
            trace = row.get("deepseek_thinking_trajectory") or row.get("thinking_trajectories")
            trace = trace[0] if isinstance(trace, list) else trace
            attempt = row.get("deepseek_attempt")
            answer = (boxed_answer(attempt) if attempt else None) or row.get("solution")
            problem = row["question"]
        elif "problem" in row and "solution" in row:  # NuminaMath-CoT
            problem, trace = row["problem"], row["solution"]
            answer = boxed_answer(trace)
        else:
            raise KeyError(f"{source} row {i}: expected s1K fields (question, thinking trajectory, solution) "
                           f"or NuminaMath fields (problem, solution); has {sorted(row)}")
        if not trace or answer is None:
            continue  # no trace or no checkable answer: unusable for BREAD's anchors and reward
        out.append(ExpertProblem(str(problem), str(trace), str(answer).strip()))
    return out


def load_eval_problems(name: str, limit: int | None = None) -> list[MathProblem]:
    """MATH500 / AIME24 / AMC / OlympiadBench by name (hub ids in ``methods.tldr.paper``) or a local jsonl."""
    return load_math_problems(name, limit)


def load_student(source: str, dtype: torch.dtype = torch.float32, device: str = "cpu") -> tuple[Any, Any]:
    """A causal LM and its tokenizer by paper name (``qwen2.5-1.5b``), hub id or local directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = PAPER_MODELS.get(source, source)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ValueError(f"tokenizer of {path} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    return model, tokenizer


def split_episodes(trace: str) -> list[str]:
    """Episodes of a written solution: paragraphs separated by blank lines, each keeping its separator.

    Concatenating the episodes gives the trace back exactly.
    """
    parts = re.split(r"(\n\s*\n)", trace)
    episodes = []
    for k in range(0, len(parts), 2):
        text = parts[k] + (parts[k + 1] if k + 1 < len(parts) else "")
        if text:
            episodes.append(text)
    return episodes


def episode_token_ends(tokenizer: Any, trace: str) -> tuple[list[int], list[int]]:
    """Token ids of the trace and the token count after each episode (the anchor boundaries).

    Episodes are tokenised together, so boundaries are exact token positions of the whole trace
    (a boundary inside a merged token is moved to that token's end).
    """
    enc = tokenizer(trace, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    ends, char_end = [], 0
    for episode in split_episodes(trace):
        char_end += len(episode)
        ends.append(sum(1 for _, stop in offsets if stop <= char_end) if char_end < len(trace) else len(ids))
    return list(ids), ends


def math_verify_rewards(responses: list[str], answers: list[str]) -> torch.Tensor:
    """1 where ``math-verify`` finds the response's final answer equal to the reference, else 0."""
    from math_verify import parse, verify

    if len(responses) != len(answers):
        raise ValueError(f"{len(responses)} responses for {len(answers)} answers")
    out = []
    for text, answer in zip(responses, answers, strict=True):
        gold, guess = parse(f"${answer}$"), parse(text)
        out.append(float(bool(guess) and bool(verify(gold, guess))))
    return torch.tensor(out)
