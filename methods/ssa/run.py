"""SSA variants on the shared sequence-model runner (``methods/cat/run.py``), plus its extra metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from methods.cat.run import AttentionArgs
from methods.cat.run import run as run_sequence_model
from methods.core.api import Family, Method, Metric, RunContext
from methods.nn import TinyLM


@dataclass
class SSAArgs(AttentionArgs):
    query_temperature: bool = True
    position_temperature: bool = True
    value_temperature: bool = True
    position_param: str = "official"  # "official": s = exp(-exp(beta)), beta0 = 2 (released code); "linear"

    mixer = "ssa"

    def mixer_args(self) -> dict[str, Any]:
        return {"rope": self.rope, "query": self.query_temperature, "position": self.position_temperature,
                "value": self.value_temperature, "position_param": self.position_param}


def extra_parameters(model: TinyLM) -> int:
    """Parameters SSA adds on top of the same model with vanilla attention."""
    return sum(p.numel() for name, p in model.named_parameters() if ".temperature." in name)


def record_ssa(ctx: RunContext, model: TinyLM) -> None:
    total, extra = model.num_parameters(), extra_parameters(model)
    ctx.record("parameters", total)
    ctx.record("extra_parameters", extra)
    ctx.record("extra_parameter_fraction", extra / (total - extra))


@dataclass
class FinetuneArgs:
    """SSA fine-tuning of a pretrained LM (paper scale); ``ssa: false`` is the plain fine-tuning baseline."""

    model: str = "gpt2"  # hub id or local path
    ssa: bool = True
    query_temperature: bool = True
    position_temperature: bool = True
    value_temperature: bool = True
    steps: int = 2000
    batch_size: int = 8
    seq_len: int = 512
    lr: float = 5e-5
    temperature_lr: float = 1e-3
    max_train_tokens: int = 0  # 0 = the whole corpus
    eval_every: int = 200  # held-out perplexity curve
    harness_batch_size: int = 8


def run_finetune(ctx: RunContext) -> None:
    from methods.ssa import hf_patch
    from methods.ssa.pretrained import (
        block_perplexity_nll,
        finetune,
        lm_eval_results,
        load_causal_lm,
        token_blocks,
    )

    args: FinetuneArgs = ctx.args
    data = ctx.load_data()
    model, tokenizer = load_causal_lm(args.model, ctx.device, ctx.dtype)
    base = model.num_parameters()
    if args.ssa:
        hf_patch.patch(model, query=args.query_temperature, position=args.position_temperature,
                       value=args.value_temperature, position_param="linear")
    extra = sum(p.numel() for p in hf_patch.ssa_parameters(model))
    ctx.log(f"{args.model}: {base:,} parameters, SSA adds {extra:,} ({extra / base:.4%})")
    train_blocks = token_blocks(tokenizer, data.train_texts, args.seq_len, args.max_train_tokens)
    eval_blocks = token_blocks(tokenizer, data.eval_texts, args.seq_len)

    def held_out(step: int | None) -> None:
        nll = block_perplexity_nll(model, eval_blocks, ctx.device, ctx.dtype)
        ctx.record_all(ctx.benchmark.score(nll), split="val", step=step)

    held_out(0)
    finetune(model, train_blocks, args.steps, args.batch_size, args.lr, args.temperature_lr,
             torch.Generator().manual_seed(ctx.seed), ctx.device, ctx.dtype, log=ctx.log,
             log_every=args.eval_every, on_log=lambda step, _loss: held_out(step))
    held_out(None)
    if data.args.tasks:
        results = lm_eval_results(model, tokenizer, list(data.args.tasks), data.args.include_path,
                                  data.args.limit, args.harness_batch_size)
        ctx.record_all(ctx.benchmark.score(results), split="test")
    ctx.record("parameters", base + extra)
    ctx.record("extra_parameters", extra)
    ctx.record("extra_parameter_fraction", extra / base)


def run(ctx: RunContext) -> None:
    if ctx.family == "finetune":
        run_finetune(ctx)
        return
    # Curves only on the validation split (language modelling); token tasks evaluate at the end.
    run_sequence_model(ctx, curve_splits=("val",), record=record_ssa)


FAMILIES = {
    "attention": Family("attention", "vanilla causal softmax attention with rotary positions", AttentionArgs),
    "ssa": Family("ssa", "selective self-attention: query / position / value inverse temperatures", SSAArgs),
    "finetune": Family("finetune", "fine-tune a pretrained HF causal LM, with or without the SSA patch",
                       FinetuneArgs),
}

METHOD = Method(
    name="ssa",
    paper="arXiv 2411.12892",
    families=FAMILIES,
    run=run,
    benchmarks=("lm_text", "passkey", "mqar", "copying", "lm_harness"),
    metrics=(Metric("parameters", False, "trainable parameter count"),
             Metric("extra_parameters", False, "parameters added over vanilla attention"),
             Metric("extra_parameter_fraction", False, "extra parameters / vanilla model parameters")),
)
