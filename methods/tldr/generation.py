"""Batched sampling with a KV cache and per-row control of when thinking stops.

The controls act on the logits of every decoding step, vectorised over the batch:

- **Temperature scaling (TS)**, TLDR (arXiv 2505.07961, Sec. "Intervention"): the end-of-thinking
  token's logit is scaled, ``z' = c + s (z - c)`` with ``s = 1 / tau`` the TS scale, so stopping
  becomes likelier exactly where the model already leans towards it (its logit is above the
  reference ``c``) and less likely where it does not. ``c`` is the mean logit of the step
  (``centered=True``; invariant to a shift of all logits) or 0 (the raw form).
- **Budget forcing**, s1 (Muennighoff et al., arXiv 2501.19393, Sec. 3.1): at ``max_think`` thinking
  tokens the end-of-thinking token is forced; before ``min_think`` an attempted stop becomes
  ``Wait`` (the stop's probability mass is moved onto the Wait token, which is what appending "Wait"
  in place of a sampled stop does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel


@dataclass
class StopControl:
    """How thinking may stop. Defaults leave the model's own distribution untouched."""

    ts_scale: float = 1.0
    centered: bool = True
    max_think: int | None = None  # force end-of-thinking at this many response tokens
    min_think: int | None = None  # before this many, an attempted stop becomes Wait


@dataclass
class SpecialTokens:
    end_think: int
    wait: int
    eos: int
    pad: int


def control_logits(logits: torch.Tensor, generated: torch.Tensor, thinking: torch.Tensor,
                   control: StopControl, tokens: SpecialTokens) -> torch.Tensor:
    """Apply TS and budget forcing to one step's logits (B, V); ``generated``: response tokens so far."""
    logits = logits.float().clone()
    eot = tokens.end_think
    if control.ts_scale != 1.0:
        ref = logits.mean(-1) if control.centered else torch.zeros_like(logits[:, 0])
        scaled = ref + control.ts_scale * (logits[:, eot] - ref)
        logits[:, eot] = torch.where(thinking, scaled, logits[:, eot])
    if control.min_think is not None:
        early = thinking & (generated < control.min_think)
        merged = torch.logaddexp(logits[:, tokens.wait], logits[:, eot])
        logits[:, tokens.wait] = torch.where(early, merged, logits[:, tokens.wait])
        logits[:, eot] = torch.where(early, torch.full_like(merged, -torch.inf), logits[:, eot])
    if control.max_think is not None:
        forced = thinking & (generated >= control.max_think)
        logits[forced] = -torch.inf
        logits[forced, eot] = 0.0
    return logits


def left_pad(prompts: torch.Tensor, lengths: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-aligned prompts (PAD after) -> right-aligned prompts and their attention mask."""
    width = prompts.shape[1]
    shift = width - lengths
    cols = (torch.arange(width)[None, :] - shift[:, None]) % width
    moved = prompts.gather(1, cols)
    mask = torch.arange(width)[None, :] >= shift[:, None]
    return torch.where(mask, moved, torch.full_like(moved, pad)), mask.long()


@torch.no_grad()
def sample(model: PreTrainedModel, prompts: torch.Tensor, lengths: torch.Tensor, tokens: SpecialTokens,
           max_new_tokens: int, generator: torch.Generator, control: StopControl | None = None,
           temperature: float = 1.0, batch_size: int = 512) -> torch.Tensor:
    """Sample responses (n, max_new_tokens), PAD after each row's ``<eos>``; local generator only."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (responses are sampled)")
    control = control or StopControl()
    model.eval()
    device = next(model.parameters()).device
    outs = []
    for start in range(0, prompts.shape[0], batch_size):
        ids, mask = left_pad(prompts[start:start + batch_size], lengths[start:start + batch_size], tokens.pad)
        ids, mask = ids.to(device), mask.to(device)
        n = ids.shape[0]
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        cache = DynamicCache()
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                    use_cache=True)
        logits = out.logits[:, -1]
        next_pos = positions[:, -1] + 1
        response = torch.full((n, max_new_tokens), tokens.pad, dtype=torch.long, device=device)
        thinking = torch.ones(n, dtype=torch.bool, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        for t in range(max_new_tokens):
            so_far = torch.full((n,), t, device=device)
            step_logits = control_logits(logits, so_far, thinking, control, tokens)
            probs = torch.softmax(step_logits / temperature, -1)
            token = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(device)
            token = torch.where(done, torch.full_like(token, tokens.pad), token)
            response[:, t] = token
            thinking &= token != tokens.end_think
            done |= token == tokens.eos
            if bool(done.all()):
                break
            mask = torch.cat([mask, (~done).long()[:, None]], 1)
            out = model(input_ids=token[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                        past_key_values=out.past_key_values, use_cache=True)
            logits = out.logits[:, -1]
            next_pos = next_pos + 1
        outs.append(response.cpu())
    return torch.cat(outs)


class TorchStopSampler:
    """``sample`` bound to a model: the torch backend behind the interface ``vllm_stop.VLLMStopSampler``
    shares, ``(prompts, lengths, max_new_tokens, generator, control, temperature) -> responses``.
    ``batch_size=None``: all prompts in one batch."""

    def __init__(self, model: PreTrainedModel, tokens: SpecialTokens, batch_size: int | None = 512) -> None:
        self.model, self.tokens, self.batch_size = model, tokens, batch_size

    def __call__(self, prompts: torch.Tensor, lengths: torch.Tensor, max_new_tokens: int,
                 generator: torch.Generator, control: StopControl | None = None, temperature: float = 1.0
                 ) -> torch.Tensor:
        return sample(self.model, prompts, lengths, self.tokens, max_new_tokens, generator, control,
                      temperature, self.batch_size or len(prompts))
