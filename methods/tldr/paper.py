"""Paper profile: a distilled reasoning model on MATH500 / AMC / AIME24 / OlympiadBench (by hub id).

The same stop controls as smoke (``generation.control_logits``: TS and budget forcing) act on every
decoding step, in the torch sampler on a transformers model or inside vLLM as a logits processor
(``methods/tldr/vllm_stop``, imported lazily); answers are checked with ``math-verify``. Everything loads
from a hub id or a local path / jsonl, so it is tested offline on tiny models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmarks.math_reasoning import PAPER_DATASETS, MathProblem, load_math_problems
from benchmarks.math_reasoning import score as score_math
from methods.tldr.generation import SpecialTokens

__all__ = ["LEVEL_INSTRUCTIONS", "PAPER_DATASETS", "PAPER_MODEL", "MathProblem", "decode",
           "encode_prompts", "load_math_problems", "load_tokenizer", "response_lengths", "score_math",
           "special_tokens"]

PAPER_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"  # the distilled small reasoning model
LEVEL_INSTRUCTIONS = {  # TLDR's level prompts (our wording)
    "any": "",
    "short": "Think briefly.",
    "medium": "Think moderately.",
    "long": "Think thoroughly.",
}


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


def encode_prompts(tokenizer: Any, problems: list[MathProblem], level: str | list[str] = "any"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts (left-aligned, pad after) and lengths; the chat template when the tokenizer has one.
    ``level``: one level for all problems, or one per problem (TLDR's paired-level RL batches)."""
    levels = [level] * len(problems) if isinstance(level, str) else list(level)
    if len(levels) != len(problems):
        raise ValueError(f"{len(levels)} levels for {len(problems)} problems")
    unknown = set(levels) - set(LEVEL_INSTRUCTIONS)
    if unknown:
        raise ValueError(f"unknown level(s) {sorted(unknown)}; known: {', '.join(LEVEL_INSTRUCTIONS)}")
    rows = []
    for p, lvl in zip(problems, levels, strict=True):
        text = f"{p.problem} {LEVEL_INSTRUCTIONS[lvl]}".strip()
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


def response_lengths(responses: torch.Tensor, tokens: SpecialTokens) -> torch.Tensor:
    """Tokens per sampled response: up to and including the first eos (all of it when there is none)."""
    is_eos = responses == tokens.eos
    return torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1,
                       torch.full((responses.shape[0],), responses.shape[1]))


def decode(tokenizer: Any, responses: torch.Tensor, lengths: torch.Tensor, tokens: SpecialTokens) -> list[str]:
    """Response texts without the final eos; ``</think>`` kept even where the tokenizer marks it special."""
    rows = [r[:int(n)].tolist() for r, n in zip(responses, lengths, strict=True)]
    rows = [r[:-1] if r and r[-1] == tokens.eos else r for r in rows]
    return tokenizer.batch_decode(rows, skip_special_tokens=False)
