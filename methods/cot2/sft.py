"""Supervised objectives and the epoch loop: no-CoT, discrete CoT SFT, CoT2 continuous SFT (CSFT).

All three are teacher-forced, so a minibatch is one forward over (prompt | step inputs):

- discrete SFT: step inputs are the trace's tokens; cross-entropy on every step and on the answer.
- CSFT (arXiv 2505.23648, Sec. 4; official ``hard_teacher``): step inputs are the *target* mixtures
  alpha*_t (their embeddings alpha*_t @ W_te); loss = sum_t KL(alpha*_t || softmax) on the steps plus
  cross-entropy on the answer. Top-B: alpha*_t from the B best traces only (official ``beam``).
- no-CoT: the answer right after the prompt.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from benchmarks.reasoning import ReasoningSplit
from methods.core.training import cosine_factor
from methods.cot2 import fused
from methods.cot2.decode import check_generator
from methods.cot2.model import embed_mixture, embed_tokens, logits
from methods.cot2.optim import FlatAdamW

SUPERVISIONS = ("no_cot", "discrete", "csft")
LR_SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, steps: int, warmup: float) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at a 0-based optimiser step.

    ``constant`` is the official code's schedule (``warmup`` must be 0); ``cosine`` warms up linearly over
    the fraction ``warmup`` of ``steps`` and decays to 0 (the suite's shared schedule).
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule '{schedule}'; known: {', '.join(LR_SCHEDULES)}")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"lr_warmup is a fraction of the steps in [0, 1), got {warmup}")
    if schedule == "constant":
        if warmup:
            raise ValueError("lr_warmup needs lr_schedule: cosine (the constant schedule has no warmup)")
        return lambda step: 1.0
    return cosine_factor(steps, warmup)


def top_beam_targets(split: ReasoningSplit, beams: int) -> torch.Tensor:
    """Per-step empirical token distribution of the ``beams`` best valid traces (needs ranked traces)."""
    if split.traces is None or split.num_valid is None:
        raise ValueError("top-B targets need ranked traces; this benchmark provides frontier targets only")
    n, M, S = split.traces.shape
    rank = torch.arange(M, device=split.traces.device)
    keep = (rank[None] < split.num_valid.clamp_max(beams)[:, None]).float()  # (n, M)
    onehot = F.one_hot(split.traces, split.vocab_size).float() * keep[:, :, None, None]
    return onehot.sum(1) / keep.sum(1)[:, None, None]


def supervised_loss(model, kind: str, prompt: torch.Tensor, answer: torch.Tensor,
                    trace: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                    target_entropy: torch.Tensor | None = None) -> torch.Tensor:
    prompt_embeds = embed_tokens(model, prompt)
    if kind == "no_cot":
        final = logits(model, prompt_embeds, last=1)[:, 0]
        return F.cross_entropy(final, answer)
    if kind == "discrete":
        S = trace.shape[1]
        out = logits(model, torch.cat([prompt_embeds, embed_tokens(model, trace)], 1), last=S + 1)
        return F.cross_entropy(out.flatten(0, 1), torch.cat([trace, answer[:, None]], 1).flatten()) * (S + 1)
    if kind == "csft":
        S = targets.shape[1]
        out = logits(model, torch.cat([prompt_embeds, embed_mixture(model, targets)], 1), last=S + 1)
        logp = out.log_softmax(-1)
        # KL(alpha* || p) = -H(alpha*) - sum alpha* log p; H(alpha*) has no gradient, so it is passed in
        # (``target_entropy``) or computed here, which keeps the loss value a true KL.
        if target_entropy is None:
            target_entropy = trace_entropy(targets)
        cross = -(targets.flatten(1) * logp[:, :S].flatten(1)).sum(1)
        return (cross - target_entropy).mean() + F.nll_loss(logp[:, S], answer)
    raise ValueError(f"unknown supervision '{kind}'; known: {', '.join(SUPERVISIONS)}")


def trace_entropy(targets: torch.Tensor) -> torch.Tensor:
    """(n, S, V) step targets -> (n,) entropy of each example's targets, summed over steps (nats)."""
    return -(targets * targets.clamp_min(1e-12).log()).sum(-1).sum(1)


def train_epochs(model, kind: str, split: ReasoningSplit, *, epochs: int, batch_size: int, lr: float,
                 weight_decay: float, generator: torch.Generator, targets: torch.Tensor | None = None,
                 on_epoch: Callable[[int, float], None] | None = None, use_fused: bool = True,
                 compile_step: bool = False, lr_schedule: str = "constant", lr_warmup: float = 0.0) -> FlatAdamW:
    """Shuffled minibatch epochs with AdamW, at a constant learning rate (as the official code) by default.

    ``lr_schedule="cosine"`` (with ``lr_warmup``, a fraction of all steps) follows ``lr_factor`` per step.

    Without dropout a step is ``fused.FusedSFTStep`` (hand-derived backward, same maths as
    ``supervised_loss``); with dropout (or ``use_fused=False``) it is ``supervised_loss`` + autograd.
    ``compile_step`` compiles the fused step (``fused.FusedSFTStep``); it needs the fused path.
    """
    if kind not in SUPERVISIONS:
        raise ValueError(f"unknown supervision '{kind}'; known: {', '.join(SUPERVISIONS)}")
    device = split.device
    check_generator(generator, device)
    n = len(split)
    batches = -(-n // batch_size)  # per epoch, the last one short
    factor = lr_factor(lr_schedule, epochs * batches, lr_warmup)
    model.train()
    opt = FlatAdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    targets = split.step_targets if targets is None else targets
    entropy = trace_entropy(targets) if kind == "csft" else None

    def set_lr(epoch: int, start: int) -> None:  # the optimiser step about to be taken, counted from 0
        opt.lr = lr * factor((epoch - 1) * batches + start // batch_size)

    step = fused.FusedSFTStep(model, opt, compile_step) if use_fused and fused.supports(model) else None
    if compile_step and step is None:
        raise ValueError("compile_step needs the fused step: dropout 0 and use_fused=True")
    if step is not None:  # input mixtures / output targets of the whole split, built once
        X_all, Y_all = fused.sft_mixtures(kind, split.prompt, split.answer, split.trace, targets,
                                          split.vocab_size)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=generator, device=device)
        total = torch.zeros((), device=device)
        if step is not None:
            # one gather per epoch; minibatches are then contiguous slices (views, no per-step copies)
            X, Y = X_all.index_select(0, order), Y_all.index_select(0, order)
            for start in range(0, n, batch_size):
                set_lr(epoch, start)
                total += step(X[start: start + batch_size], Y[start: start + batch_size])
            if kind == "csft":  # the loss is a KL: subtract the targets' entropy (batch means), once
                batch_of = torch.arange(n, device=device) // batch_size
                total -= (torch.zeros(batches, device=device).index_add_(0, batch_of, entropy[order])
                          / torch.bincount(batch_of)).sum()
        else:
            prompt, answer, trace = split.prompt[order], split.answer[order], split.trace[order]
            soft, ent = (targets[order], entropy[order]) if kind == "csft" else (None, None)
            for start in range(0, n, batch_size):
                end = start + batch_size
                loss = supervised_loss(model, kind, prompt[start:end], answer[start:end], trace[start:end],
                                       None if soft is None else soft[start:end],
                                       None if ent is None else ent[start:end])
                opt.zero_grad()
                loss.backward()
                set_lr(epoch, start)
                opt.step()
                total += loss.detach()
        if on_epoch is not None:
            on_epoch(epoch, float(total) / batches)
            model.train()
    return opt
