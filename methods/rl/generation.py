"""Generation backends behind one interface: ``sampler.sample(prompts, max_new_tokens, ...) -> Generation``.

- ``TorchSampler``: batched ancestral sampling from any ``tokens -> logits`` function (TinyLM or a
  transformers model); prompts of different lengths share one right-padded buffer, so no attention mask
  or position shift is needed. Default on CPU.
- ``HFGenerateSampler``: transformers ``generate`` (KV cache, left padding), result re-laid right-padded.
- ``VLLMSampler``: vLLM (GPU extra), imported only when constructed.

All return a right-padded ``Generation``: row = prompt + completion, so the loss sees one layout.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from methods.rl.grpo import LogitsFn


@dataclass
class Generation:
    """Sampled rows: tokens (B, L) = prompt + completion, right-padded with ``pad_id``."""

    tokens: torch.Tensor
    prompt_lengths: torch.Tensor  # (B,) tokens before the completion (prompt, plus any expert prefix)
    completion_lengths: torch.Tensor  # (B,) sampled tokens kept, EOS included
    pad_id: int

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def completion_mask(self) -> torch.Tensor:
        """(B, L-1) float, aligned with ``tokens[:, 1:]``: 1 on sampled tokens (what the loss scores)."""
        pos = torch.arange(1, self.tokens.shape[1], device=self.tokens.device)[None, :]
        start = self.prompt_lengths[:, None]
        return ((pos >= start) & (pos < start + self.completion_lengths[:, None])).float()

    def completions(self, width: int | None = None) -> torch.Tensor:
        """(B, width) the sampled tokens of each row, left-aligned, padded with ``pad_id``."""
        width = width or int(self.completion_lengths.max().item()) if len(self) else 0
        idx = self.prompt_lengths[:, None] + torch.arange(width)[None, :]
        valid = torch.arange(width)[None, :] < self.completion_lengths[:, None]
        out = self.tokens.gather(1, idx.clamp(max=self.tokens.shape[1] - 1))
        return out.masked_fill(~valid, self.pad_id)


def right_pad(rows: Sequence[torch.Tensor], pad_id: int, width: int | None = None) -> torch.Tensor:
    width = width or max(int(r.numel()) for r in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):  # one copy per row; rows are built once per batch, not per token
        out[i, : r.numel()] = r
    return out


class Sampler(Protocol):
    def sample(self, prompts: Sequence[torch.Tensor], max_new_tokens: int | torch.Tensor, *,
               temperature: float = 1.0, generator: torch.Generator | None = None) -> Generation: ...


def _budgets(max_new_tokens: int | torch.Tensor, n: int) -> torch.Tensor:
    if isinstance(max_new_tokens, torch.Tensor):
        if max_new_tokens.shape != (n,):
            raise ValueError(f"per-row max_new_tokens must have shape ({n},), "
                             f"got {tuple(max_new_tokens.shape)}")
        return max_new_tokens.long().cpu()
    return torch.full((n,), int(max_new_tokens), dtype=torch.long)


class TorchSampler:
    """Batched sampling with a full forward per new token (no KV cache: right for tiny models)."""

    def __init__(self, logits_fn: LogitsFn, pad_id: int, eos_id: int | None = None,
                 device: torch.device | str = "cpu") -> None:
        self.logits_fn, self.pad_id, self.eos_id = logits_fn, pad_id, eos_id
        self.device = torch.device(device)

    @torch.no_grad()
    def sample(self, prompts: Sequence[torch.Tensor], max_new_tokens: int | torch.Tensor, *,
               temperature: float = 1.0, generator: torch.Generator | None = None) -> Generation:
        n = len(prompts)
        if n == 0:
            raise ValueError("no prompts to sample from")
        budgets = _budgets(max_new_tokens, n)
        lengths = torch.tensor([int(p.numel()) for p in prompts])
        tokens = right_pad(prompts, self.pad_id, int((lengths + budgets).max().item()))
        prompt_lengths, done = lengths.clone(), budgets <= 0
        rows = torch.arange(n)
        for _ in range(int(budgets.max().item())):
            if bool(done.all()):
                break
            width = int(lengths.max().item())
            logits = self.logits_fn(tokens[:, :width].to(self.device)).float().cpu()
            last = logits[rows, lengths - 1]
            if temperature > 0:
                probs = torch.softmax(last / temperature, -1)
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            else:
                nxt = last.argmax(-1)
            active = ~done
            tokens[rows[active], lengths[active]] = nxt[active]
            lengths = lengths + active.long()
            finished = lengths - prompt_lengths >= budgets
            if self.eos_id is not None:
                finished |= active & (nxt == self.eos_id)
            done |= finished
        return Generation(tokens, prompt_lengths, lengths - prompt_lengths, self.pad_id)


def _seed_from(generator: torch.Generator | None) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())


class HFGenerateSampler:
    """transformers ``generate`` with sampling; the RNG is forked so global state is left untouched."""

    def __init__(self, model: Any, pad_id: int, eos_id: int | None = None) -> None:
        self.model, self.pad_id, self.eos_id = model, pad_id, eos_id

    @torch.no_grad()
    def sample(self, prompts: Sequence[torch.Tensor], max_new_tokens: int | torch.Tensor, *,
               temperature: float = 1.0, generator: torch.Generator | None = None) -> Generation:
        n = len(prompts)
        budgets = _budgets(max_new_tokens, n)
        lengths = torch.tensor([int(p.numel()) for p in prompts])
        width = int(lengths.max().item())
        left = torch.full((n, width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((n, width), dtype=torch.long)
        for i, p in enumerate(prompts):
            left[i, width - p.numel():], attn[i, width - p.numel():] = p, 1
        device = next(self.model.parameters()).device
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(_seed_from(generator))
            out = self.model.generate(input_ids=left.to(device), attention_mask=attn.to(device),
                                      do_sample=temperature > 0, temperature=temperature or None,
                                      top_k=0, top_p=1.0, max_new_tokens=int(budgets.max().item()),
                                      pad_token_id=self.pad_id, eos_token_id=self.eos_id)
        new = out[:, width:].cpu()
        keep = _kept_lengths(new, budgets, self.eos_id)
        rows = [torch.cat([p.cpu(), new[i, : keep[i]]]) for i, p in enumerate(prompts)]
        return Generation(right_pad(rows, self.pad_id), lengths, keep, self.pad_id)


def _kept_lengths(new: torch.Tensor, budgets: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """Sampled tokens to keep per row: up to and including the first EOS, capped by the row's budget."""
    keep = torch.minimum(budgets, torch.full_like(budgets, new.shape[1]))
    if eos_id is not None:
        is_eos = new == eos_id
        first = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1, torch.full_like(keep, new.shape[1]))
        keep = torch.minimum(keep, first)
    return keep


class VLLMSampler:
    """vLLM rollouts (GPU). ``sync_weights(model)`` pushes the trained policy's weights into the engine."""

    def __init__(self, model_path: str, pad_id: int, eos_id: int | None = None, **llm_kwargs: Any) -> None:
        try:
            from vllm import LLM  # GPU-only extra: imported here, never at module import
        except ImportError as err:  # pragma: no cover - exercised only without vllm
            raise ImportError("VLLMSampler needs the 'gpu' extra (pip install vllm); "
                              "use TorchSampler or HFGenerateSampler on CPU") from err
        # the engine in this process, so ``sync_weights`` can reach its model (V1 starts a subprocess otherwise)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.llm = LLM(model=model_path, **llm_kwargs)
        self.pad_id, self.eos_id = pad_id, eos_id

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Load the policy's weights into the in-process engine's model (colocated rollouts, as TRL's).

        vLLM's V1 engine wraps the worker (``driver_worker.worker.model_runner``), the V0 engine does not
        (``driver_worker.model_runner``); V1 needs ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` so the engine lives in
        this process. Neither path is a public API: a vLLM that has neither fails here with a clear message.
        """
        driver = self.llm.llm_engine.model_executor.driver_worker
        runner = getattr(getattr(driver, "worker", driver), "model_runner", None)  # V1 wraps, V0 does not
        if runner is None:
            raise RuntimeError("cannot reach the vLLM engine's model to push weights (neither "
                               "driver_worker.worker.model_runner nor driver_worker.model_runner exists); "
                               "set VLLM_ENABLE_V1_MULTIPROCESSING=0 or use a vLLM this code knows")
        runner.model.load_weights(model.state_dict().items())

    def sample(self, prompts: Sequence[torch.Tensor], max_new_tokens: int | torch.Tensor, *,
               temperature: float = 1.0, generator: torch.Generator | None = None,
               extra_args: dict[str, Any] | None = None) -> Generation:
        """``extra_args``: per-request arguments for the engine's custom logits processors (vLLM's
        ``SamplingParams.extra_args``), the same for every row."""
        from vllm import SamplingParams

        n = len(prompts)
        budgets = _budgets(max_new_tokens, n)
        seed = _seed_from(generator)
        extra = {"extra_args": extra_args} if extra_args is not None else {}
        params = [SamplingParams(temperature=temperature, max_tokens=int(b), seed=seed + i,
                                 stop_token_ids=[self.eos_id] if self.eos_id is not None else None, **extra)
                  for i, b in enumerate(budgets.tolist())]
        outs = self.llm.generate([{"prompt_token_ids": p.tolist()} for p in prompts], params, use_tqdm=False)
        new = [torch.tensor(o.outputs[0].token_ids, dtype=torch.long) for o in outs]
        keep = torch.tensor([t.numel() for t in new])
        rows = [torch.cat([p.cpu(), t]) for p, t in zip(prompts, new, strict=True)]
        lengths = torch.tensor([int(p.numel()) for p in prompts])
        return Generation(right_pad(rows, self.pad_id), lengths, keep, self.pad_id)


def build_sampler(backend: str, *, logits_fn: LogitsFn | None = None, model: Any = None,
                  model_path: str | None = None, pad_id: int, eos_id: int | None = None,
                  device: torch.device | str = "cpu", **kwargs: Any) -> Sampler:
    """Pick a backend by name: 'torch' (default), 'hf' (transformers generate) or 'vllm'."""
    if backend == "torch":
        if logits_fn is None:
            raise ValueError("backend 'torch' needs logits_fn")
        return TorchSampler(logits_fn, pad_id, eos_id, device)
    if backend == "hf":
        if model is None:
            raise ValueError("backend 'hf' needs a transformers model")
        return HFGenerateSampler(model, pad_id, eos_id)
    if backend == "vllm":
        if model_path is None:
            raise ValueError("backend 'vllm' needs model_path")
        return VLLMSampler(model_path, pad_id, eos_id, **kwargs)
    raise ValueError(f"unknown generation backend {backend!r}; known: torch, hf, vllm")
