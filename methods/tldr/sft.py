"""Supervised fine-tuning on the verbose traces: the "distilled" model whose stopping TLDR fixes."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from methods.core.training import TrainConfig, train

IGNORE = -100


def pack(prompts: torch.Tensor, lengths: torch.Tensor, responses: torch.Tensor, pad: int
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt + response per row, right-padded; labels on response tokens only (the loss of SFT)."""
    full = torch.cat([prompts, responses], 1)
    is_pad = full == pad
    order = torch.argsort(is_pad.int(), dim=1, stable=True)  # left-aligned prompts, then the response
    tokens = full.gather(1, order)
    width = int((~is_pad).sum(1).max())
    tokens = tokens[:, :width]
    position = torch.arange(width)[None, :]
    scored = (position >= lengths[:, None]) & (tokens != pad)
    labels = torch.where(scored, tokens, torch.full_like(tokens, IGNORE))
    return tokens, labels


def sequence_loss(model: PreTrainedModel, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on labelled positions (right padding needs no attention mask)."""
    logits = model(input_ids=tokens[:, :-1]).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE)


def supervised_finetune(model: PreTrainedModel, tokens: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
                        seed: int, device: torch.device, dtype: torch.dtype,
                        log: Callable[[str], None]) -> list[float]:
    tokens, labels = tokens.to(device), labels.to(device)

    def loss_on(idx: torch.Tensor) -> torch.Tensor:
        batch_tokens, batch_labels = tokens[idx], labels[idx]
        width = int((batch_tokens != 0).sum(1).max())  # trim the batch to its longest row
        return sequence_loss(model, batch_tokens[:, :width], batch_labels[:, :width])

    generator = torch.Generator().manual_seed(seed)
    return train(model, cfg, loss_on, tokens.shape[0], generator, device, dtype, log=log)
