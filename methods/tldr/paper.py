"""Paper profile: a distilled reasoning model on MATH500 / AMC / AIME24 / OlympiadBench (by hub id).

The same sampler and stop controls as smoke (``generation.sample`` with TS / budget forcing) run on a
transformers model; answers are checked with ``math-verify``. vLLM is imported lazily and serves plain
sampling and s1-style budget forcing (generate up to the budget, stopping at ``</think>``, then append
it and let the model answer), where per-step logit control is not needed; TS uses the transformers
path. Everything loads from a hub id or a local path / jsonl, so it is tested offline on tiny models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmarks.math_reasoning import PAPER_DATASETS, MathProblem, load_math_problems
from benchmarks.math_reasoning import score as score_math
from methods.tldr.generation import SpecialTokens

__all__ = ["LEVEL_INSTRUCTIONS", "PAPER_DATASETS", "PAPER_MODEL", "MathProblem", "VLLMGenerator", "decode",
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
