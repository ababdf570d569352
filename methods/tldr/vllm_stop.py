"""TLDR's stop controls inside vLLM: temperature scaling and budget forcing as a custom logits processor.

The rule is ``generation.control_logits``, the one the torch sampler applies, run on each request's row
of the engine's logits by a per-request processor (vLLM's ``AdapterLogitsProcessor`` for the V1 model
runner; vLLM docs, "Custom Logits Processors"). A request opts in through ``SamplingParams.extra_args``
(key ``EXTRA_KEY``), so one engine serves controlled and plain requests side by side. ``VLLMStopSampler``
returns responses in the torch sampler's layout, so evaluation and RL code take either.

Imports vLLM at module import: load this module only when the vLLM backend is asked for.
"""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from typing import Any

import torch

# Newer vLLM defaults to its V2 model runner, whose processor interface differs; this module implements the
# V1 runner's (the V2 runner ignores AdapterLogitsProcessor subclasses), so keep the V1 runner unless told.
os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")

from vllm.v1.sample.logits_processor import AdapterLogitsProcessor  # noqa: E402  (after the runner choice)

from methods.rl import VLLMSampler  # noqa: E402
from methods.tldr.generation import SpecialTokens, StopControl, control_logits  # noqa: E402

EXTRA_KEY = "tldr_stop_control"


def encode_control(control: StopControl, tokens: SpecialTokens) -> dict[str, Any]:
    """The control and token ids as plain values (``extra_args`` crosses vLLM's process boundary)."""
    return {"control": asdict(control), "tokens": asdict(tokens)}


def decode_control(value: Any) -> tuple[StopControl, SpecialTokens]:
    """Inverse of ``encode_control``; a malformed value is a ``ValueError`` naming what is wrong."""
    if not isinstance(value, dict) or set(value) != {"control", "tokens"}:
        raise ValueError(f"extra_args[{EXTRA_KEY!r}] must be encode_control(...)'s dict, got {value!r}")
    out = []
    for cls, part in ((StopControl, value["control"]), (SpecialTokens, value["tokens"])):
        names = {f.name for f in fields(cls)}
        if not isinstance(part, dict) or not set(part) <= names:
            raise ValueError(f"extra_args[{EXTRA_KEY!r}]: {cls.__name__} takes {sorted(names)}, got {part!r}")
        out.append(cls(**part))
    return out[0], out[1]


class RowStopControl:
    """One request's control: sees the tokens it has generated and its next-token logits row (V,).

    Thinking is over once ``</think>`` has been generated; the new tokens since the last call are the only
    ones read, so a step costs O(1) list work besides the row update.
    """

    def __init__(self, control: StopControl, tokens: SpecialTokens) -> None:
        self.control, self.tokens = control, tokens
        self.seen, self.thinking = 0, True

    def __call__(self, output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
        if self.thinking and self.tokens.end_think in output_ids[self.seen:]:
            self.thinking = False
        self.seen = len(output_ids)
        if not self.thinking or not self._acts_at(len(output_ids)):  # every control acts only while thinking
            return logits
        generated = torch.tensor([len(output_ids)], device=logits.device)
        thinking = torch.ones(1, dtype=torch.bool, device=logits.device)
        row = control_logits(logits[None], generated, thinking, self.control, self.tokens)[0]
        return row.to(logits.dtype)

    def _acts_at(self, n: int) -> bool:
        """Whether any control changes the row after ``n`` thinking tokens (budget forcing acts on few steps;
        skipping the rest keeps the per-step cost off the engine's decode loop)."""
        c = self.control
        return (c.ts_scale != 1.0 or (c.min_think is not None and n < c.min_think)
                or (c.max_think is not None and n >= c.max_think))


class StopControlProcessor(AdapterLogitsProcessor):
    """vLLM batch-level processor: a ``RowStopControl`` for every request that carries ``EXTRA_KEY``."""

    @classmethod
    def validate_params(cls, params: Any) -> None:
        extra = getattr(params, "extra_args", None) or {}
        if EXTRA_KEY in extra:
            decode_control(extra[EXTRA_KEY])

    def is_argmax_invariant(self) -> bool:
        return False  # forcing or suppressing </think> changes the argmax

    def new_req_logits_processor(self, params: Any) -> RowStopControl | None:
        extra = getattr(params, "extra_args", None) or {}
        if EXTRA_KEY not in extra:
            return None
        return RowStopControl(*decode_control(extra[EXTRA_KEY]))


class VLLMStopSampler:
    """vLLM generation under a ``StopControl``: ``generation.sample``'s arguments and output layout.

    The engine is the shared ``methods.rl.VLLMSampler`` (in-process, so ``sync_weights`` can push a
    policy's weights for RL rollouts) with ``StopControlProcessor`` loaded.
    """

    def __init__(self, model_path: str, tokens: SpecialTokens, **llm_kwargs: Any) -> None:
        processors = list(llm_kwargs.pop("logits_processors", [])) + [StopControlProcessor]
        self.engine = VLLMSampler(model_path, tokens.pad, tokens.eos, logits_processors=processors, **llm_kwargs)
        self.tokens = tokens

    def sync_weights(self, model: torch.nn.Module) -> None:
        self.engine.sync_weights(model)

    def __call__(self, prompts: torch.Tensor, lengths: torch.Tensor, max_new_tokens: int,
                 generator: torch.Generator, control: StopControl | None = None, temperature: float = 1.0
                 ) -> torch.Tensor:
        """Responses (n, max_new_tokens), PAD after each row's ``<eos>``, as ``generation.sample`` returns."""
        if temperature <= 0:
            raise ValueError("temperature must be > 0 (responses are sampled)")
        rows = [prompts[i, :int(n)] for i, n in enumerate(lengths)]
        extra = {EXTRA_KEY: encode_control(control, self.tokens)} if control is not None else None
        gen = self.engine.sample(rows, max_new_tokens, temperature=temperature, generator=generator,
                                 extra_args=extra)
        out = torch.full((len(rows), max_new_tokens), self.tokens.pad, dtype=torch.long)
        for i, (start, n) in enumerate(zip(gen.prompt_lengths.tolist(), gen.completion_lengths.tolist(),
                                           strict=True)):
            new = gen.tokens[i, start:start + n]
            out[i, :n] = new
            # a row that ended before its budget stopped on eos; keep the eos where vLLM leaves it out
            if n < max_new_tokens and (n == 0 or int(new[-1]) != self.tokens.eos):
                out[i, n] = self.tokens.eos
        return out
