"""The one supervised training loop: AdamW, warmup + cosine decay, gradient clipping, progress lines."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from methods.core.devices import autocast


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: float = 0.05  # fraction of steps
    grad_clip: float = 1.0
    log_every: int = 100


def cosine_factor(steps: int, warmup: float) -> Callable[[int], float]:
    """Learning-rate multiplier at a 0-based step: linear warmup over ``warmup`` of ``steps``, then cosine to 0."""
    warm = max(1, int(warmup * steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, steps - warm))))

    return factor


def cosine_schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: float):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_factor(steps, warmup))


def train(model: nn.Module, cfg: TrainConfig, loss_on: Callable[[torch.Tensor], torch.Tensor], n_train: int,
          generator: torch.Generator, device: torch.device, dtype: torch.dtype,
          log: Callable[[str], None] = print, on_log: Callable[[int], None] | None = None,
          optimizer: torch.optim.Optimizer | None = None) -> list[float]:
    """Train for ``cfg.steps`` minibatches of indices into a training set of size ``n_train``.

    ``loss_on(indices)`` returns the loss of that minibatch; ``on_log(step)`` runs at each log step
    (for curves). ``optimizer`` replaces the default AdamW(lr, weight_decay) when a method needs its own
    parameter groups (e.g. SSA's temperatures with their own learning rate); the schedule wraps it.
    Returns the loss at each log step.
    """
    model.train()
    opt = optimizer or torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = cosine_schedule(opt, cfg.steps, cfg.warmup)
    losses, running = [], 0.0
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, n_train, (cfg.batch_size,), generator=generator)
        with autocast(device, dtype):
            loss = loss_on(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        running += loss.item()
        if step % cfg.log_every == 0 or step == cfg.steps:
            n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
            losses.append(running / n)
            log(f"step {step}/{cfg.steps} loss {running / n:.4f}")
            running = 0.0
            if on_log is not None:
                on_log(step)
                model.train()
    return losses


@torch.no_grad()
def predict_tokens(model: nn.Module, inputs: torch.Tensor, device: torch.device, dtype: torch.dtype,
                   batch_size: int = 256) -> torch.Tensor:
    """Greedy next-token predictions at every position, batched."""
    model.eval()
    out = []
    for start in range(0, inputs.shape[0], batch_size):
        with autocast(device, dtype):
            logits = model(inputs[start : start + batch_size].to(device))
        out.append(logits.argmax(-1).cpu())
    return torch.cat(out)


def record_token_samples(ctx, model: nn.Module, split, n: int = 8) -> None:
    """The first ``n`` examples' targets and greedy predictions at their labelled positions, as samples
    (``samples.jsonl``), for splits scored on predictions (not on NLL)."""
    if getattr(split, "scored_by", "predictions") == "nll":
        return
    preds = predict_tokens(model, split.inputs[:n], ctx.device, ctx.dtype)
    for i in range(preds.shape[0]):
        mask = split.labels[i] != -100
        ctx.sample(index=i, target=split.labels[i][mask].tolist(), prediction=preds[i][mask].tolist())
