"""TLDR's paper profile: the distilled model on ``math_reasoning`` (MATH500 / AMC / AIME24 / OlympiadBench).

The same variants as smoke, through the same code: the SFT model is the distilled checkpoint (the stage
only evaluates it), TS and budget forcing use ``generation.sample``'s stop controls and ``run.run_sweep``
(operating point tuned on the val split held out from the RL prompt pool), and TLDR is
``rl.train_length_grpo`` with a math-verify judge and the level written into the prompt. Rows: per eval set
(split ``test_<set>``, ``test_<set>_<level>``) and their macro average (split ``test``, ``test_<level>``),
as the paper reports per benchmark and on average.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from benchmarks.math_reasoning import MathProblem, is_correct
from methods.core.api import RunContext
from methods.rl import GRPOConfig
from methods.tldr.generation import SpecialTokens, StopControl, TorchStopSampler
from methods.tldr.paper import decode, encode_prompts, load_tokenizer, response_lengths, special_tokens
from methods.tldr.policy import load_policy
from methods.tldr.rl import StopSampler, train_length_grpo

MODEL_FILE, REFERENCE_FILE = "model.json", "reference.json"


class MathEvaluator:
    """Encode, sample under a stop control, decode and score problems with one model and tokenizer.

    Sampling goes through ``self.generate``: the torch sampler on ``model`` or vLLM serving ``source``
    (``make_stop_sampler``), both under the same ``StopControl`` rule.
    """

    def __init__(self, ctx: RunContext, model: torch.nn.Module, tokenizer: Any, source: str) -> None:
        self.ctx, self.model, self.tokenizer = ctx, model, tokenizer
        self.tokens: SpecialTokens = special_tokens(tokenizer)
        self.args = ctx.args
        self.generate = make_stop_sampler(ctx, model, source, self.tokens)

    def responses(self, problems: list[MathProblem], level: str | list[str], generator: torch.Generator,
                  control: StopControl | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        prompts, lengths = encode_prompts(self.tokenizer, problems, level)
        out = self.generate(prompts, lengths, self.args.max_new_tokens, generator, control,
                            temperature=self.args.temperature)
        return out, response_lengths(out, self.tokens)

    def score(self, problems: list[MathProblem], generator: torch.Generator, control: StopControl | None = None,
              level: str = "any") -> dict[str, float]:
        out, lengths = self.responses(problems, level, generator, control)
        texts = decode(self.tokenizer, out, lengths, self.tokens)
        return self.ctx.benchmark.score(texts, problems, lengths)

    def score_sets(self, test: dict[str, list[MathProblem]], generator: torch.Generator,
                   control: StopControl | None = None, level: str = "any"
                   ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """(macro average over eval sets, per-set metrics); a metric absent in a set is averaged without it."""
        per_set = {name: self.score(problems, generator, control, level) for name, problems in test.items()}
        keys = {k for m in per_set.values() for k in m}
        macro = {k: sum(m[k] for m in per_set.values() if k in m) / sum(k in m for m in per_set.values())
                 for k in keys}
        return macro, per_set


def make_stop_sampler(ctx: RunContext, model: torch.nn.Module, source: str, tokens: SpecialTokens
                      ) -> StopSampler:
    """vLLM when ``backend: vllm`` and it is installed, else the torch sampler (the fallback is logged)."""
    args = ctx.args
    if args.backend == "vllm":
        try:
            from methods.tldr.vllm_stop import VLLMStopSampler  # imports vllm
        except ImportError:
            ctx.log("vllm is not installed: sampling uses the torch sampler (backend 'torch')")
        else:
            kwargs = {"dtype": str(ctx.dtype).removeprefix("torch."), "seed": ctx.seed, **args.vllm}
            return VLLMStopSampler(source, tokens, **kwargs)
    elif args.backend != "torch":
        raise ValueError(f"backend must be 'torch' or 'vllm', got {args.backend!r}")
    return TorchStopSampler(model, tokens, args.eval_batch_size)


def _model_and_tokenizer(source: str, ctx: RunContext) -> tuple[torch.nn.Module, Any]:
    return load_policy(source, ctx.device, ctx.dtype), load_tokenizer(source)


def run_stage(ctx: RunContext) -> None:
    """The distilled model is the SFT model: record where it is and its reference scores (val, test)."""
    if not ctx.args.model:
        raise ValueError("the math_reasoning stage needs `model:` (a hub id or a local path)")
    model, tokenizer = _model_and_tokenizer(ctx.args.model, ctx)
    data = ctx.load_data()
    evaluator = MathEvaluator(ctx, model, tokenizer, ctx.args.model)
    generator = torch.Generator().manual_seed(ctx.seed)
    macro, per_set = evaluator.score_sets(data["test"], generator)
    reference = {"val": evaluator.score(data["val"], generator), "test": macro,
                 **{f"test_{name}": m for name, m in per_set.items()}}
    ctx.log(f"SFT (distilled) reference: {reference}")
    (ctx.out_dir / MODEL_FILE).write_text(json.dumps({"model": ctx.args.model}))
    (ctx.out_dir / REFERENCE_FILE).write_text(json.dumps(reference, indent=1))


def run(ctx: RunContext) -> None:
    from methods.tldr.run import _controls, _record_vs_sft, record_levels, run_sweep

    if "sft_model" not in ctx.inputs:
        raise ValueError(f"variant '{ctx.variant}' needs `after: sft_model` in the config")
    stage = Path(ctx.inputs["sft_model"])
    source = json.loads((stage / MODEL_FILE).read_text())["model"]
    reference = json.loads((stage / REFERENCE_FILE).read_text())
    model, tokenizer = _model_and_tokenizer(source, ctx)
    data = ctx.load_data()
    evaluator = MathEvaluator(ctx, model, tokenizer, source)
    generator = torch.Generator().manual_seed(ctx.seed)

    def record_sets(macro: dict[str, float], per_set: dict[str, dict[str, float]], suffix: str = "") -> None:
        _record_vs_sft(ctx, macro, reference["test"], f"test{suffix}")
        for name, metrics in per_set.items():
            _record_vs_sft(ctx, metrics, reference[f"test_{name}"], f"test_{name}{suffix}")

    if ctx.family == "sft":
        record_sets(*evaluator.score_sets(data["test"], generator))
    elif ctx.family in ("ts", "budget_forcing"):
        def evaluate_on(split: str, control: StopControl | None, gen: torch.Generator) -> dict[str, float]:
            if split == "val":
                return evaluator.score(data["val"], gen, control)
            return evaluator.score_sets(data["test"], gen, control)[0]

        knobs, controls = _controls(ctx)
        chosen = run_sweep(ctx, knobs, controls, evaluate_on, reference, generator)
        macro, per_set = evaluator.score_sets(data["test"], generator, controls[knobs.index(chosen)])
        for name, metrics in per_set.items():
            _record_vs_sft(ctx, metrics, reference[f"test_{name}"], f"test_{name}")
    elif ctx.family == "tldr":
        _train(ctx, evaluator, data["train"], generator)
        per_level = {}
        for level in ctx.args.budgets:
            per_level[level], per_set = evaluator.score_sets(data["test"], generator, level=level)
            for name, metrics in per_set.items():
                _record_vs_sft(ctx, metrics, reference[f"test_{name}"], f"test_{name}_{level}")
        record_levels(ctx, per_level, {k: float(v) for k, v in ctx.args.budgets.items()}, reference["test"])
    else:  # the config layer rejects unknown families before a job starts
        raise ValueError(f"unknown family {ctx.family}")


def _train(ctx: RunContext, evaluator: MathEvaluator, train: list[MathProblem], generator: torch.Generator
           ) -> None:
    """GRPO with reward ``1[math-verify correct] - alpha * |L - B_level| / B_level``; levels paired per problem."""
    args = ctx.args
    if not train:
        raise ValueError("TLDR needs RL prompts: the math_reasoning train split is empty")
    levels = sorted(args.budgets, key=args.budgets.__getitem__)
    if args.prompts_per_step % len(levels):
        raise ValueError(f"prompts_per_step ({args.prompts_per_step}) must be a multiple of the number of levels "
                         f"({len(levels)}): each drawn problem is asked at every level")
    cfg = GRPOConfig(group_size=args.group_size, lr=args.rl_lr, loss_type=args.loss_type, beta=args.beta,
                     temperature=args.temperature)
    batch: list[MathProblem] = []

    def draw() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(train), (args.prompts_per_step // len(levels),), generator=generator)
        batch[:] = [train[int(i)] for i in idx.repeat_interleave(len(levels))]
        row_levels = levels * (args.prompts_per_step // len(levels))
        prompts, lengths = encode_prompts(evaluator.tokenizer, batch, row_levels)
        budgets = torch.tensor([float(args.budgets[lvl]) for lvl in row_levels])
        return prompts, lengths, budgets, torch.arange(len(batch))

    def judge(responses: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = response_lengths(responses, evaluator.tokens)
        texts = decode(evaluator.tokenizer, responses, lengths, evaluator.tokens)
        correct = torch.tensor([is_correct(t, batch[int(r)]) for t, r in zip(texts, rows, strict=True)])
        return correct.float(), lengths

    def on_log(step: int, stats: dict[str, float]) -> None:
        for name in ("reward", "zero_variance_fraction", "mean_tokens"):
            ctx.record(name, stats[name], split="train", step=step)

    train_length_grpo(evaluator.model, draw, judge, args.length_penalty, args.penalty, cfg, args.rl_steps,
                      args.max_new_tokens, evaluator.tokens, generator, ctx.log, args.log_every, on_log,
                      args.rl_warmup, rollouts=evaluator.generate)
