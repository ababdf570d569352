"""Batched decoding of the chain of thought: greedy discrete, sampled discrete, continuous, MTS, Dirichlet.

Every mode runs the whole batch at once, one forward per step over the new position only (the
prompt's and earlier steps' keys/values are cached). Modes (CoT2, arXiv 2505.23648):

- ``greedy``: discrete CoT, argmax token fed back.
- ``sample``: discrete CoT, a token sampled at temperature 1 (pass@k draws).
- ``continuous``: the full softmax fed back as a continuous token (CoT2 inference, Sec. 4).
- ``mts``: multi-token sampling, K tokens drawn from softmax(logits / K) and their embeddings averaged
  (Sec. 5; K = 1 is discrete sampling; the 1/K temperature is the official ``sampling_normalization``).
- ``dirichlet``: a point of the simplex drawn from Dirichlet(scale * probs) (Sec. 5, continuous exploration).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from methods.cot2.model import embed_mixture, embed_tokens, logits

MODES = ("greedy", "sample", "continuous", "mts", "dirichlet")
DIRICHLET_FLOOR = 1e-3  # smallest concentration share (official MIN_PROB), so the density stays finite


@dataclass
class Rollout:
    step_probs: torch.Tensor  # (N, S, V) the policy's distribution at each step
    step_tokens: torch.Tensor | None  # (N, S, K) sampled tokens (greedy/sample/mts)
    step_weights: torch.Tensor  # (N, S, V) the simplex point fed back at each step
    answer: torch.Tensor  # (N,)
    support: torch.Tensor | None = None  # (N, S, V) Dirichlet mode: the tokens the draw was over


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """Sampling draws on the tensors' device: a generator elsewhere fails deep inside torch, so say it here."""
    if generator is not None and torch.device(generator.device).type != torch.device(device).type:
        raise ValueError(f"sampling generator is on {generator.device} but the tensors are on {device}; "
                         f"create it there: torch.Generator(device={str(device)!r}).manual_seed(seed)")


def dirichlet_support(probs: torch.Tensor) -> torch.Tensor:
    """Tokens a Dirichlet step explores: probability >= the floor (official ``union_mask``)."""
    return probs >= DIRICHLET_FLOOR


def dirichlet_concentration(probs: torch.Tensor, support: torch.Tensor, scale: float) -> torch.Tensor:
    """Concentration on ``support``: probs floored, renormalised there, times ``scale`` (0 off it)."""
    floored = probs.clamp_min(DIRICHLET_FLOOR) * support
    return scale * floored / floored.sum(-1, keepdim=True)


def dirichlet_log_prob(weights: torch.Tensor, concentration: torch.Tensor,
                       support: torch.Tensor) -> torch.Tensor:
    """Log density of Dirichlet(concentration) restricted to ``support`` at ``weights`` (last dim)."""
    conc = torch.where(support, concentration, torch.ones_like(concentration))
    log_x = weights.clamp_min(1e-30).log()
    terms = torch.where(support, (conc - 1) * log_x - torch.lgamma(conc), torch.zeros_like(conc))
    return torch.lgamma((concentration * support).sum(-1)) + terms.sum(-1)


@torch.no_grad()
def rollout(model, prompt: torch.Tensor, num_steps: int, mode: str, *, k: int = 1, normalize: bool = True,
            dirichlet_scale: float = 1.0, sample_answer: bool = False,
            generator: torch.Generator | None = None) -> Rollout:
    if mode not in MODES:
        raise ValueError(f"unknown decode mode '{mode}'; known: {', '.join(MODES)}")
    check_generator(generator, prompt.device)
    model.eval()
    embeds = embed_tokens(model, prompt)  # the prompt, then one new position per step (keys/values cached)
    cache: list = []
    probs_seen, tokens_seen, weights_seen, support_seen = [], [], [], []
    V = model.config.vocab_size
    for _ in range(num_steps):
        step_logits = logits(model, embeds, last=1, cache=cache)[:, 0].float()
        probs = step_logits.softmax(-1)
        probs_seen.append(probs)
        if mode == "continuous":
            weights = probs
        elif mode == "dirichlet":
            support = dirichlet_support(probs)
            conc = dirichlet_concentration(probs, support, dirichlet_scale)
            shape = torch.where(support, conc, torch.ones_like(conc))
            gamma = torch._standard_gamma(shape, generator) * support
            weights = gamma / gamma.sum(-1, keepdim=True).clamp_min(1e-30)
            support_seen.append(support)
        else:
            if mode == "greedy":
                tokens = probs.argmax(-1, keepdim=True)
            else:
                draw = (step_logits / k).softmax(-1) if (mode == "mts" and normalize) else probs
                tokens = torch.multinomial(draw, k if mode == "mts" else 1, replacement=True,
                                           generator=generator)
            tokens_seen.append(tokens)
            weights = F.one_hot(tokens, V).float().mean(1)
        weights_seen.append(weights)
        embeds = embed_mixture(model, weights)[:, None]
    final = logits(model, embeds, last=1, cache=cache)[:, 0].float()
    if sample_answer or mode == "sample":
        answer = torch.multinomial(final.softmax(-1), 1, generator=generator)[:, 0]
    else:
        answer = final.argmax(-1)
    n = prompt.shape[0]
    empty = torch.zeros(n, 0, V, device=prompt.device)
    return Rollout(step_probs=torch.stack(probs_seen, 1) if probs_seen else empty,
                   step_tokens=torch.stack(tokens_seen, 1) if tokens_seen else None,
                   step_weights=torch.stack(weights_seen, 1) if weights_seen else empty,
                   answer=answer,
                   support=torch.stack(support_seen, 1) if support_seen else None)


def rollout_batched(model, prompt: torch.Tensor, num_steps: int, mode: str, batch_size: int = 4096,
                    **kwargs) -> Rollout:
    """``rollout`` over chunks of at most ``batch_size`` rows (bounded memory for pass@k draws)."""
    parts = [rollout(model, prompt[i: i + batch_size], num_steps, mode, **kwargs)
             for i in range(0, prompt.shape[0], batch_size)]

    def cat(name: str) -> torch.Tensor | None:
        return None if getattr(parts[0], name) is None else torch.cat([getattr(p, name) for p in parts])

    return Rollout(cat("step_probs"), cat("step_tokens"), cat("step_weights"), cat("answer"), cat("support"))


def step_entropy(step_probs: torch.Tensor) -> torch.Tensor:
    """(N, S, V) -> (S,) mean entropy (nats) of the policy's token distribution at each step."""
    return -(step_probs * step_probs.clamp_min(1e-12).log()).sum(-1).mean(0)
