"""Local training and prediction: the client's work in a round, also used for pretraining."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.core.devices import autocast
from methods.fedyolo.vit import ViTClassifier


def train_epochs(model: ViTClassifier, task: str, x: torch.Tensor, y: torch.Tensor,
                 params: list[nn.Parameter], epochs: int, batch_size: int, lr: float, weight_decay: float,
                 generator: torch.Generator, device: torch.device, dtype: torch.dtype = torch.float32) -> float:
    """``epochs`` passes of AdamW over (x, y) in shuffled minibatches; returns the mean loss. The forward
    pass runs under autocast to ``dtype`` (bf16 mixed precision on a GPU; nothing changes in float32).

    A fresh optimiser per call: clients keep no optimiser state between rounds (FedAvg with local
    AdamW, as is usual when fine-tuning transformers federatedly)."""
    if len(y) == 0:
        return float("nan")
    model.train()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    total, steps = 0.0, 0
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            with autocast(device, dtype):
                loss = F.cross_entropy(model(x[idx].to(device), task).float(), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            total, steps = total + loss.item(), steps + 1
    return total / max(1, steps)


@torch.no_grad()
def predict(model: ViTClassifier, task: str, x: torch.Tensor, device: torch.device,
            batch_size: int = 512, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    model.eval()
    with autocast(device, dtype):
        return torch.cat([model(x[s:s + batch_size].to(device), task).argmax(-1).cpu()
                          for s in range(0, len(x), batch_size)])
