"""SSA's training loop: the shared loop's schedule, plus the temperatures' own optimiser group.

The released SSA code (``umich-sota/selective_attention``, ``finetune/full_bindata_finetune.py``) trains
the temperature parameter ``beta`` with its own Adam optimiser (``beta_lr = 1e-2``, no weight decay)
next to the model's AdamW. We do the same with one AdamW and two parameter groups: the model's weights
(``lr``, ``weight_decay``) and the SSA temperatures (``temperature_lr``, no weight decay: decaying the
official ``beta`` would move the position temperature away from its identity initialisation). Both
groups follow the shared warmup + cosine schedule (``methods.core.training.cosine_schedule``), so the
attention baseline trained here is step for step the shared loop (``methods.core.training.train``).

``steps_to_target`` turns a validation curve into "steps to reach a perplexity" (the paper's
"same perplexity in fewer steps", arXiv 2411.12892 Sec. 5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from methods.core.training import TrainConfig, train

TEMPERATURE_MARKER = ".temperature."  # SelectiveAttention keeps its SSA parameters under `temperature`
POSITION_MARKER = "position_param_value"  # the position temperature's parameter (the released code's beta)
SCOPES = ("position", "all")


def split_parameters(model: nn.Module, scope: str = "position") -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(model weights, temperature parameters with their own lr); the second is empty for attention.

    ``scope="position"``: only the position temperature (what the released code gives its own lr; the
    query/value vectors are read off the shared projections and train with them); ``"all"``: every SSA
    temperature parameter.
    """
    if scope not in SCOPES:
        raise ValueError(f"temperature scope must be one of {SCOPES}, got {scope!r}")
    weights, temperatures = [], []
    for name, param in model.named_parameters():
        own = TEMPERATURE_MARKER in f".{name}." and (scope == "all" or POSITION_MARKER in name)
        (temperatures if own else weights).append(param)
    return weights, temperatures


def make_optimizer(model: nn.Module, lr: float, weight_decay: float,
                   temperature_lr: float | None, scope: str = "position") -> torch.optim.Optimizer:
    """AdamW over the weights; the temperatures in ``scope`` in their own group (``temperature_lr``, no decay).

    ``temperature_lr=None`` puts every parameter in the weights' group (the untuned setting).
    """
    weights, temperatures = split_parameters(model, scope)
    if temperature_lr is None or not temperatures:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if temperature_lr <= 0:
        raise ValueError(f"temperature_lr must be > 0, got {temperature_lr}")
    return torch.optim.AdamW([{"params": weights, "lr": lr, "weight_decay": weight_decay},
                              {"params": temperatures, "lr": temperature_lr, "weight_decay": 0.0}])


def train_with_temperatures(model: nn.Module, cfg: TrainConfig, temperature_lr: float | None,
                            temperature_scope: str, loss_on: Callable[[torch.Tensor], torch.Tensor], n_train: int,
                            generator: torch.Generator, device: torch.device, dtype: torch.dtype,
                            log: Callable[[str], None] = print,
                            on_log: Callable[[int], None] | None = None) -> list[float]:
    """``methods.core.training.train`` with :func:`make_optimizer`; same batches, schedule and clipping."""
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay, temperature_lr, temperature_scope)
    return train(model, cfg, loss_on, n_train, generator, device, dtype, log=log, on_log=on_log, optimizer=opt)


def steps_to_target(steps: Sequence[float], perplexities: Sequence[float], target: float) -> float:
    """First step at which the curve reaches ``target`` (log-perplexity interpolated between points).

    The curve starts at step 0 (an untrained model is taken to be above any target). Returns ``nan``
    when the curve never reaches the target.
    """
    if len(steps) != len(perplexities) or not steps:
        raise ValueError("steps and perplexities must be non-empty and of equal length")
    if target <= 0:
        raise ValueError(f"target perplexity must be > 0, got {target}")
    prev_step, prev_log = None, None
    for step, ppl in zip(steps, perplexities, strict=True):
        if ppl <= target:
            if prev_step is None or prev_log is None or prev_log == math.log(ppl):
                return float(step)
            frac = (prev_log - math.log(target)) / (prev_log - math.log(ppl))
            return float(prev_step + frac * (step - prev_step))
        prev_step, prev_log = step, math.log(ppl)
    return float("nan")
