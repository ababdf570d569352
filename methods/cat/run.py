"""Train a TinyLM with the chosen mixer on a token task and score it at every test length.

This runner serves every sequence-model family of the architecture track (``methods/cat`` and
``methods/ssa``): a family's args dataclass names its mixer and the mixer's arguments
(``mixer_args``). Token tasks are scored by greedy predictions at the labelled positions; language
modelling splits (``scored_by = "nll"``) by the per-token negative log-likelihood.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from methods.core.api import Family, Method, Metric, RunContext
from methods.core.devices import autocast
from methods.core.training import TrainConfig, predict_tokens, record_token_samples, train
from methods.nn import LMConfig, TinyLM


@dataclass
class SequenceModelArgs:
    n_layers: int = 1
    d_model: int = 64
    n_heads: int = 1
    mlp: bool = True
    steps: int = 800
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.1
    eval_every: int = 0  # > 0 records test accuracy curves every this many steps

    mixer = "attention"

    def mixer_args(self) -> dict[str, Any]:
        return {}


@dataclass
class AttentionArgs(SequenceModelArgs):
    rope: bool = True

    def mixer_args(self) -> dict[str, Any]:
        return {"rope": self.rope}


@dataclass
class CATArgs(SequenceModelArgs):
    conv_kernel: int = 3  # CAT is position-free: the convolution supplies local order

    mixer = "cat"

    def mixer_args(self) -> dict[str, Any]:
        return {"kernel": self.conv_kernel}


@dataclass
class LCATArgs(CATArgs):
    block: int = 16  # landmark block length (CAT arXiv 2407.05591, Sec. 5)

    mixer = "lcat"

    def mixer_args(self) -> dict[str, Any]:
        return {"kernel": self.conv_kernel, "block": self.block}


@dataclass
class MambaArgs(SequenceModelArgs):
    d_state: int = 8  # mambapy's pure-PyTorch scan; 16 costs ~3x the CPU time at smoke sizes
    expand: int = 1
    mamba_conv: int = 4
    mlp: bool = False  # a Mamba block is the whole layer (Gu & Dao, arXiv 2312.00752)

    mixer = "mamba"

    def mixer_args(self) -> dict[str, Any]:
        return {"d_state": self.d_state, "expand": self.expand, "conv_kernel": self.mamba_conv}


def build_model(args: SequenceModelArgs, vocab_size: int) -> TinyLM:
    return TinyLM(LMConfig(vocab_size=vocab_size, d_model=args.d_model, n_layers=args.n_layers,
                           n_heads=args.n_heads, mixer=args.mixer, mixer_args=args.mixer_args(),
                           mlp=args.mlp))


@torch.no_grad()
def token_nll(model: TinyLM, inputs: torch.Tensor, labels: torch.Tensor, device: torch.device,
              dtype: torch.dtype, batch_size: int = 64) -> torch.Tensor:
    """Negative log-likelihood (nats) of every label, batched; (n, length) on CPU."""
    model.eval()
    out = []
    for start in range(0, inputs.shape[0], batch_size):
        with autocast(device, dtype):
            logits = model(inputs[start : start + batch_size].to(device))
        nll = F.cross_entropy(logits.float().transpose(1, 2), labels[start : start + batch_size].to(device),
                              reduction="none")
        out.append(nll.cpu())
    return torch.cat(out)


def evaluate_split(ctx: RunContext, model: TinyLM, split: Any) -> dict[str, float]:
    if getattr(split, "scored_by", "predictions") == "nll":
        return ctx.benchmark.score(token_nll(model, split.inputs, split.labels, ctx.device, ctx.dtype), split)
    return ctx.benchmark.score(predict_tokens(model, split.inputs, ctx.device, ctx.dtype), split)


def record_extra(ctx: RunContext, model: TinyLM) -> None:
    """Hook for methods that report more about the trained model (SSA: extra parameters)."""
    ctx.record("parameters", model.num_parameters())


def prepare(ctx: RunContext) -> tuple[dict[str, Any], TinyLM, Callable[[torch.Tensor], torch.Tensor], int]:
    """The job's evaluation splits, its model, the loss of a minibatch of training indices, and n_train."""
    args: SequenceModelArgs = ctx.args
    data = ctx.load_data()
    train_split = data.pop("train")
    model = build_model(args, ctx.data_args.vocab_size).to(ctx.device)
    ctx.log(f"{ctx.family} ({args.mixer}) {args.n_layers}L d={args.d_model}: "
            f"{model.num_parameters():,} parameters")
    inputs, labels = train_split.inputs.to(ctx.device), train_split.labels.to(ctx.device)

    def loss_on(idx: torch.Tensor) -> torch.Tensor:
        logits = model(inputs[idx])
        return F.cross_entropy(logits.flatten(0, 1).float(), labels[idx].flatten(), ignore_index=-100)

    return data, model, loss_on, len(train_split)


def run(ctx: RunContext, curve_splits: tuple[str, ...] | None = None, record=record_extra) -> None:
    """Train, then evaluate every non-train split; ``curve_splits`` also every ``eval_every`` steps."""
    args: SequenceModelArgs = ctx.args
    data, model, loss_on, n_train = prepare(ctx)
    curves = list(data) if curve_splits is None else [s for s in curve_splits if s in data]

    def evaluate(step: int | None, names: list[str]) -> None:
        for split_name in names:
            ctx.record_all(evaluate_split(ctx, model, data[split_name]), split=split_name, step=step)

    train(model, TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                             weight_decay=args.weight_decay, log_every=args.eval_every or 250),
          loss_on, n_train, torch.Generator().manual_seed(ctx.seed), ctx.device, ctx.dtype,
          log=ctx.log, on_log=(lambda step: evaluate(step, curves)) if args.eval_every else None)
    evaluate(None, list(data))
    record(ctx, model)
    record_token_samples(ctx, model, data["test"])


FAMILIES = {
    "attention": Family("attention", "causal softmax attention with rotary positions", AttentionArgs),
    "cat": Family("cat", "attention on short-causal-convolved Q, K, V (no positional encoding)",
                  CATArgs),
    "lcat": Family("lcat", "landmark CAT: long-convolution block summaries pick one block to attend",
                   LCATArgs),
    "mamba": Family("mamba", "Mamba selective state-space layer (mambapy, pure PyTorch)", MambaArgs),
}

METHOD = Method(
    name="cat",
    paper="arXiv 2407.05591",
    families=FAMILIES,
    run=run,
    benchmarks=("mqar", "copying", "selective_copying", "ngram_recall", "passkey", "lm_text"),
    metrics=(Metric("parameters", False, "trainable parameter count"),),
)
