"""SSA variants on the shared sequence-model runner (``methods/cat/run.py``), plus its extra metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from methods.cat.run import AttentionArgs, evaluate_split, prepare
from methods.core.api import Family, Method, Metric, RunContext
from methods.core.training import TrainConfig, record_token_samples
from methods.nn import TinyLM
from methods.ssa.training import steps_to_target, train_with_temperatures


@dataclass
class BaselineArgs(AttentionArgs):
    """Vanilla attention on SSA's runner; ``target_val_perplexity`` > 0 records ``steps_to_target``."""

    target_val_perplexity: float = 0.0


@dataclass
class SSAArgs(BaselineArgs):
    query_temperature: bool = True
    position_temperature: bool = True
    value_temperature: bool = True
    position_param: str = "official"  # "official": s = exp(-exp(beta)), beta0 = 2 (released code); "linear"
    # The temperatures' own learning rate, no weight decay (released code: beta_lr = 1e-2,
    # umich-sota/selective_attention finetune/full_bindata_finetune.py); 0 = train them with the weights.
    temperature_lr: float = 1e-2
    temperature_scope: str = "position"  # which temperatures get temperature_lr: "position" (beta) or "all"
    scaled_logits: bool = True  # token-temperature logits times 1/sqrt(head_dim)

    mixer = "ssa"

    def mixer_args(self) -> dict[str, Any]:
        return {"rope": self.rope, "query": self.query_temperature, "position": self.position_temperature,
                "value": self.value_temperature, "position_param": self.position_param,
                "scaled_logits": self.scaled_logits}


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


def run_sequence(ctx: RunContext) -> None:
    """Train a TinyLM (attention or SSA mixer), curves on ``val`` every ``eval_every`` steps, then test.

    The shared runner (``methods/cat/run.py``) with SSA's optimiser groups
    (:func:`methods.ssa.training.train_with_temperatures`) and the steps-to-target metric.
    """
    args: BaselineArgs = ctx.args
    data, model, loss_on, n_train = prepare(ctx)

    curve: list[tuple[int, float]] = []
    last_val: dict[int, dict[str, float]] = {}  # the latest val scores by step (reused at the end)

    def evaluate_val(step: int) -> None:
        if "val" not in data:
            return
        scores = evaluate_split(ctx, model, data["val"])
        last_val.clear()
        last_val[step] = scores
        ctx.record_all(scores, split="val", step=step)
        if "perplexity" in scores:
            curve.append((step, scores["perplexity"]))

    temperature_lr = getattr(args, "temperature_lr", 0.0) or None
    train_with_temperatures(
        model, TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                           weight_decay=args.weight_decay, log_every=args.eval_every or 250),
        temperature_lr, getattr(args, "temperature_scope", "position"), loss_on, n_train,
        torch.Generator().manual_seed(ctx.seed), ctx.device, ctx.dtype, log=ctx.log,
        on_log=evaluate_val if args.eval_every else None)
    for split_name, split in data.items():
        # The curve's last point is the trained model's val score: not evaluated twice.
        reuse = split_name == "val" and args.steps in last_val
        ctx.record_all(last_val[args.steps] if reuse else evaluate_split(ctx, model, split), split=split_name)
    record_ssa(ctx, model)
    if args.target_val_perplexity > 0:
        if not curve:
            raise ValueError("target_val_perplexity needs a val perplexity curve (eval_every > 0, a val split)")
        reached = steps_to_target([s for s, _ in curve], [p for _, p in curve], args.target_val_perplexity)
        # Not reaching the target within the run is recorded as the run's length (a lower bound).
        ctx.record("steps_to_target", args.steps if reached != reached else reached, split="val")
        ctx.record("reached_target", float(reached == reached), split="val")
    record_token_samples(ctx, model, data["test"])


def run(ctx: RunContext) -> None:
    if ctx.family == "finetune":
        run_finetune(ctx)
        return
    run_sequence(ctx)


FAMILIES = {
    "attention": Family("attention", "vanilla causal softmax attention with rotary positions", BaselineArgs),
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
             Metric("extra_parameter_fraction", False, "extra parameters / vanilla model parameters"),
             Metric("steps_to_target", False,
                    "training steps until val perplexity reaches target_val_perplexity (run length if never)"),
             Metric("reached_target", True, "1 if val perplexity reached target_val_perplexity in the run")),
)
