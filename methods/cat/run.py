"""Train a TinyLM with the chosen mixer on a token task and score it at every test length."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from methods.core.api import Family, Method, Metric, RunContext
from methods.core.training import TrainConfig, predict_tokens, train
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


@dataclass
class AttentionArgs(SequenceModelArgs):
    rope: bool = True


@dataclass
class CATArgs(SequenceModelArgs):
    conv_kernel: int = 3  # CAT is position-free: the convolution supplies local order


def build_model(family: str, args: SequenceModelArgs, vocab_size: int) -> TinyLM:
    mixer_args = {"kernel": args.conv_kernel} if isinstance(args, CATArgs) else {"rope": args.rope}
    return TinyLM(LMConfig(vocab_size=vocab_size, d_model=args.d_model, n_layers=args.n_layers,
                           n_heads=args.n_heads, mixer=family, mixer_args=mixer_args, mlp=args.mlp))


def run(ctx: RunContext) -> None:
    args: SequenceModelArgs = ctx.args
    data = ctx.load_data()
    train_split = data.pop("train")
    model = build_model(ctx.family, args, ctx.data_args.vocab_size).to(ctx.device)
    ctx.log(f"{ctx.family} {args.n_layers}L d={args.d_model}: {model.num_parameters():,} parameters")
    inputs, labels = train_split.inputs.to(ctx.device), train_split.labels.to(ctx.device)

    def loss_on(idx: torch.Tensor) -> torch.Tensor:
        logits = model(inputs[idx])
        return F.cross_entropy(logits.flatten(0, 1).float(), labels[idx].flatten(), ignore_index=-100)

    def evaluate(step: int | None) -> None:
        for split_name, split in data.items():
            preds = predict_tokens(model, split.inputs, ctx.device, ctx.dtype)
            ctx.record_all(ctx.benchmark.score(preds, split), split=split_name, step=step)

    train(model, TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                             weight_decay=args.weight_decay, log_every=args.eval_every or 250),
          loss_on, len(train_split), torch.Generator().manual_seed(ctx.seed), ctx.device, ctx.dtype,
          log=ctx.log, on_log=(lambda step: evaluate(step)) if args.eval_every else None)
    evaluate(None)
    ctx.record("parameters", model.num_parameters())
    test = data["test"]
    preds = predict_tokens(model, test.inputs[:8], ctx.device, ctx.dtype)
    for i in range(preds.shape[0]):
        mask = test.labels[i] != -100
        ctx.sample(index=i, target=test.labels[i][mask].tolist(), prediction=preds[i][mask].tolist())


FAMILIES = {
    "attention": Family("attention", "causal softmax attention with rotary positions", AttentionArgs),
    "cat": Family("cat", "attention on short-causal-convolved Q, K, V (no positional encoding)",
                  CATArgs),
}

METHOD = Method(
    name="cat",
    paper="arXiv 2407.05591",
    families=FAMILIES,
    run=run,
    benchmarks=("mqar",),
    metrics=(Metric("parameters", False, "trainable parameter count"),),
)
