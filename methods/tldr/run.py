"""TLDR's variants on the verbose-sum task; all start from one SFT model (the ``sft_model`` stage).

- ``sft``: the verbose SFT model as it is (the reference every other variant is compared with).
- ``ts``: temperature scaling of the end-of-thinking logit, swept; the operating scale tuned on val.
- ``budget_forcing``: s1's maximum budget (force ``</think>``), swept; budget tuned on val.
- ``budget_forcing_wait``: s1's "Wait" extension as well: stops before the budget become ``Wait``,
  so thinking lasts exactly the budget.
- ``tldr``: length-regularised GRPO with short/medium/long level tokens, each with its own budget.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import torch

from benchmarks.verbose_sum import END_THINK, EOS, LEVELS, PAD, WAIT, Split
from methods.core.api import Family, Method, Metric, RunContext
from methods.core.training import TrainConfig
from methods.rl import GRPOConfig
from methods.tldr.evaluate import EvalSettings, accuracy_at_tokens, evaluate, pick_operating_point
from methods.tldr.generation import SpecialTokens, StopControl
from methods.tldr.policy import PolicyArgs, build_policy, load_policy, num_parameters, save_policy
from methods.tldr.rl import LengthReward, train_tldr
from methods.tldr.sft import pack, supervised_finetune

TOKENS = SpecialTokens(end_think=END_THINK, wait=WAIT, eos=EOS, pad=PAD)
POLICY_DIR, REFERENCE_FILE = "policy", "reference.json"


@dataclass
class EvalArgs:
    max_new_tokens: int = 64
    temperature: float = 1.0  # responses are sampled: the SFT model's stopping is a distribution
    eval_batch_size: int = 512
    # Paper profile (math_reasoning): "torch" (the KV-cached sampler of methods/tldr/generation) or "vllm" (the
    # stop controls as a vLLM logits processor, methods/tldr/vllm_stop; falls back to torch, logged, where
    # vllm is not installed). ``vllm``: keyword arguments for vLLM's ``LLM`` (gpu_memory_utilization, ...).
    backend: str = "torch"
    vllm: dict = field(default_factory=dict)


@dataclass
class SFTStageArgs(PolicyArgs, EvalArgs):
    steps: int = 400
    batch_size: int = 64
    lr: float = 1e-2
    weight_decay: float = 0.1
    model: str = ""  # paper profile (math_reasoning): the distilled model's hub id or path; no training


@dataclass
class SFTArgs(EvalArgs):
    # The SFT model asked at each level too (rows test_<level>, length_error against these budgets): the
    # baseline for TLDR's multi-level control. Empty: only the level-free prompt.
    level_budgets: dict = field(default_factory=dict)


@dataclass
class SweepArgs(EvalArgs):
    # The operating-point rule (the same for TS and budget forcing): the knob with the fewest val tokens
    # whose val accuracy is at most ``tolerance`` below the uncontrolled model's val accuracy.
    tolerance: float = 0.02
    matched_tokens: list[float] = field(default_factory=lambda: [14.0, 16.0, 18.0])


@dataclass
class TSArgs(SweepArgs):
    scales: list[float] = field(default_factory=lambda: [1.0, 1.1, 1.2, 1.3, 1.5, 2.0, 3.0])
    centered: bool = True


@dataclass
class BudgetArgs(SweepArgs):
    budgets: list[int] = field(default_factory=lambda: [8, 12, 16, 20, 24])
    wait: bool = False  # s1's Wait extension: an early stop becomes "Wait" until the budget


@dataclass
class TLDRArgs(EvalArgs):
    budgets: dict = field(default_factory=lambda: {"short": 14, "medium": 20, "long": 26})
    length_penalty: float = 0.5
    penalty: str = "distance"  # or "over": only tokens beyond the budget cost
    rl_steps: int = 60
    prompts_per_step: int = 16
    group_size: int = 8
    rl_lr: float = 1e-3
    loss_type: str = "dapo"
    beta: float = 0.0
    log_every: int = 10
    paired_levels: bool = True  # every drawn problem asked at all levels in one step (rl.level_batch)
    rl_warmup: float | None = 0.1  # warm-up fraction of a cosine RL learning-rate schedule; None: constant lr


def _settings(args: EvalArgs) -> EvalSettings:
    if args.backend != "torch":
        raise ValueError(f"backend {args.backend!r}: the verbose-sum task samples with the torch sampler only "
                         "(its from-scratch policy has no tokenizer); backend 'vllm' is for math_reasoning")
    return EvalSettings(args.max_new_tokens, args.temperature, args.eval_batch_size)


def run_stage(ctx: RunContext) -> None:
    """Train the verbose SFT model from scratch; save it and its reference scores on val and test.
    At paper scale (math_reasoning) the SFT model is the distilled checkpoint: ``paper_run.run_stage``."""
    if ctx.benchmark.name == "math_reasoning":
        from methods.tldr import paper_run

        paper_run.run_stage(ctx)
        return
    args: SFTStageArgs = ctx.args
    settings = _settings(args)  # a bad backend fails before training, not after
    data = ctx.load_data()
    train = data["train"]
    model = build_policy(train.vocab.size, args, PAD, 1, EOS).to(ctx.device)
    ctx.log(f"SFT policy: {num_parameters(model):,} parameters, {len(train)} verbose traces")
    tokens, labels = pack(train.prompts, train.prompt_lengths, train.responses, PAD)
    supervised_finetune(model, tokens, labels, TrainConfig(steps=args.steps, batch_size=args.batch_size,
                                                           lr=args.lr, weight_decay=args.weight_decay,
                                                           log_every=100),
                        ctx.seed, ctx.device, ctx.dtype, ctx.log)
    save_policy(model, ctx.out_dir / POLICY_DIR)
    generator = torch.Generator().manual_seed(ctx.seed)
    reference = {name: evaluate(model, data[name], ctx.benchmark.score, TOKENS, settings, generator)[0]
                 for name in ("val", "test")}
    ctx.log(f"SFT reference: {reference}")
    (ctx.out_dir / REFERENCE_FILE).write_text(json.dumps(reference, indent=1))


def _load(ctx: RunContext) -> tuple[torch.nn.Module, dict[str, dict[str, float]], dict[str, Split]]:
    if "sft_model" not in ctx.inputs:
        raise ValueError(f"variant '{ctx.variant}' needs `after: sft_model` in the config")
    stage = Path(ctx.inputs["sft_model"])
    model = load_policy(stage / POLICY_DIR, ctx.device)
    reference = json.loads((stage / REFERENCE_FILE).read_text())
    return model, reference, ctx.load_data()


def _record_vs_sft(ctx: RunContext, metrics: dict[str, float], reference: dict[str, float],
                   split: str) -> None:
    ctx.record_all(metrics, split=split)
    ctx.record("token_reduction_vs_sft", 1.0 - metrics["mean_tokens"] / reference["mean_tokens"], split=split)
    ctx.record("accuracy_change_vs_sft", metrics["accuracy"] - reference["accuracy"], split=split)
    if "mean_tokens_wrong" in metrics and "mean_tokens_correct" in metrics:
        ctx.record("wrong_over_correct_tokens", metrics["mean_tokens_wrong"] / metrics["mean_tokens_correct"],
                   split=split)


def _samples(ctx: RunContext, split: Split, responses: torch.Tensor, label: str, n: int = 4) -> None:
    names = split.vocab.names() if split.vocab else []
    for i in range(min(n, len(split))):
        ctx.sample(setting=label, prompt=" ".join(names[t] for t in split.prompts[i].tolist() if t != PAD),
                   response=" ".join(names[t] for t in responses[i].tolist() if t != PAD),
                   answer=int(split.answers[i]))


def run(ctx: RunContext) -> None:
    if ctx.benchmark.name == "math_reasoning":
        from methods.tldr import paper_run

        paper_run.run(ctx)
        return
    _settings(ctx.args)  # a bad backend fails before any work
    model, reference, data = _load(ctx)
    generator = torch.Generator().manual_seed(ctx.seed)
    if ctx.family == "sft":
        metrics, responses = evaluate(model, data["test"], ctx.benchmark.score, TOKENS, _settings(ctx.args),
                                      generator)
        _record_vs_sft(ctx, metrics, reference["test"], "test")
        _samples(ctx, data["test"], responses, "sft")
        if ctx.args.level_budgets:
            per_level = {level: evaluate(model, data["test"].with_level(level), ctx.benchmark.score, TOKENS,
                                         _settings(ctx.args), generator)[0] for level in ctx.args.level_budgets}
            record_levels(ctx, per_level, ctx.args.level_budgets, reference["test"])
    elif ctx.family in ("ts", "budget_forcing"):
        _run_sweep(ctx, model, reference, data, generator)
    elif ctx.family == "tldr":
        _run_tldr(ctx, model, reference, data, generator)
    else:  # the config layer rejects unknown families before a job starts
        raise ValueError(f"unknown family {ctx.family}")


def _controls(ctx: RunContext) -> tuple[list[float], list[StopControl]]:
    args = ctx.args
    if isinstance(args, TSArgs):
        return list(args.scales), [StopControl(ts_scale=s, centered=args.centered) for s in args.scales]
    return [float(b) for b in args.budgets], [StopControl(max_think=b, min_think=b if args.wait else None)
                                              for b in args.budgets]


def _run_sweep(ctx: RunContext, model, reference, data, generator) -> None:
    """The verbose-sum sweep: ``run_sweep`` with this task's sampler and scorer."""
    args: SweepArgs = ctx.args

    def evaluate_on(split: str, control: StopControl | None, gen: torch.Generator) -> dict[str, float]:
        return evaluate(model, data[split], ctx.benchmark.score, TOKENS, _settings(args), gen, control)[0]

    knobs, controls = _controls(ctx)
    chosen = run_sweep(ctx, knobs, controls, evaluate_on, reference, generator)
    shown = data["test"].subset(4)
    _, responses = evaluate(model, shown, ctx.benchmark.score, TOKENS, _settings(args), generator,
                            controls[knobs.index(chosen)])
    _samples(ctx, shown, responses, f"{ctx.family}@{chosen}")


Evaluator = Callable[[str, "StopControl | None", torch.Generator], dict[str, float]]


def run_sweep(ctx: RunContext, knobs: list[float], controls: list[StopControl], evaluate_on: Evaluator,
              reference: dict[str, dict[str, float]], generator: torch.Generator) -> float:
    """Accuracy-tokens curve over the knob (rows with ``step`` = the knob, on val and test), the val-tuned
    operating point on test, and accuracy at matched mean-token counts (to compare TS with budget forcing).
    ``evaluate_on(split, control, generator)`` samples and scores one split ("val" or "test").

    Every val evaluation (each knob, and the uncontrolled model the rule compares with) draws from one
    fixed seed: common random numbers, so the knobs' accuracy differences on val are not swamped by
    sampling noise (with independent draws the 0.02 tolerance is about one standard error).
    """
    args: SweepArgs = ctx.args
    val_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))

    def on_val(control: StopControl | None) -> dict[str, float]:
        return evaluate_on("val", control, torch.Generator().manual_seed(val_seed))

    val_reference = on_val(None)
    curve: dict[str, list[dict[str, float]]] = {"val": [], "test": []}
    for knob, control in zip(knobs, controls, strict=True):
        curve["val"].append(on_val(control))
        curve["test"].append(evaluate_on("test", control, generator))
        ctx.record_all(curve["test"][-1], split="sweep", step=knob)
        for name in ("accuracy", "mean_tokens"):
            ctx.record(name, curve["val"][-1][name], split="sweep_val", step=knob)
        ctx.log(f"{ctx.family} knob {knob}: val accuracy {curve['val'][-1]['accuracy']:.3f} tokens "
                f"{curve['val'][-1]['mean_tokens']:.1f}; test accuracy {curve['test'][-1]['accuracy']:.3f} "
                f"tokens {curve['test'][-1]['mean_tokens']:.1f}")
    chosen = pick_operating_point(knobs, [m["accuracy"] for m in curve["val"]],
                                  [m["mean_tokens"] for m in curve["val"]], val_reference["accuracy"],
                                  args.tolerance)
    ctx.log(f"{ctx.family}: operating point {chosen} (val reference accuracy "
            f"{val_reference['accuracy']:.3f}, tolerance {args.tolerance})")
    _record_vs_sft(ctx, curve["test"][knobs.index(chosen)], reference["test"], "test")
    ctx.record("operating_point", chosen, split="test")
    matched = accuracy_at_tokens([m["mean_tokens"] for m in curve["test"]],
                                 [m["accuracy"] for m in curve["test"]], args.matched_tokens)
    for target, acc in zip(args.matched_tokens, matched, strict=True):
        ctx.record("accuracy_at_tokens", acc, split="matched", step=target)
    ctx.record("accuracy_matched_tokens", sum(matched) / len(matched), split="test")
    return chosen


def _run_tldr(ctx: RunContext, model, reference, data, generator) -> None:
    args: TLDRArgs = ctx.args
    unknown = set(args.budgets) - (set(LEVELS) - {"any"})
    if unknown:
        raise ValueError(f"tldr budgets: unknown level(s) {sorted(unknown)}; known: short, medium, long")
    cfg = GRPOConfig(group_size=args.group_size, lr=args.rl_lr, loss_type=args.loss_type, beta=args.beta,
                     temperature=args.temperature)
    reward = LengthReward({k: int(v) for k, v in args.budgets.items()}, args.length_penalty, args.penalty)

    def on_log(step: int, stats: dict[str, float]) -> None:
        ctx.record("reward", stats["reward"], split="train", step=step)
        ctx.record("zero_variance_fraction", stats["zero_variance_fraction"], split="train", step=step)
        ctx.record("mean_tokens", stats["mean_tokens"], split="train", step=step)

    train_tldr(model, data["train"], reward, cfg, args.rl_steps, args.prompts_per_step, args.max_new_tokens,
               TOKENS, generator, ctx.log, args.log_every, on_log, args.paired_levels,
               args.rl_warmup)
    per_level = {}
    for level in args.budgets:
        split = data["test"].with_level(level)
        per_level[level], responses = evaluate(model, split, ctx.benchmark.score, TOKENS, _settings(args),
                                               generator)
        _samples(ctx, split, responses, f"tldr_{level}", n=2)
    record_levels(ctx, per_level, args.budgets, reference["test"])
    # The same per-level rows on the validation problems (after the test pass, so the test rows keep their
    # sampling stream): RL settings such as rl_steps are compared on these, never on test.
    val_levels = {level: evaluate(model, data["val"].with_level(level), ctx.benchmark.score, TOKENS,
                                  _settings(args), generator)[0] for level in args.budgets}
    record_levels(ctx, val_levels, args.budgets, reference["val"], prefix="val")


def record_levels(ctx: RunContext, per_level: dict[str, dict[str, float]], budgets: dict[str, float],
                  reference: dict[str, float], prefix: str = "test") -> None:
    """Rows per level (split ``<prefix>_<level>``): scores vs SFT and ``length_error`` against the level's
    own budget; ``levels_ordered`` / ``level_span`` over the levels sorted by budget."""
    for level, metrics in per_level.items():
        name = f"{prefix}_{level}"
        _record_vs_sft(ctx, metrics, reference, name)
        ctx.record("length_error", abs(metrics["mean_tokens"] - budgets[level]) / budgets[level], split=name)
        ctx.log(f"tldr {level} (budget {budgets[level]}): accuracy {metrics['accuracy']:.3f} "
                f"tokens {metrics['mean_tokens']:.1f}")
    by_budget = [per_level[level]["mean_tokens"] for level in sorted(per_level, key=budgets.__getitem__)]
    ctx.record("levels_ordered", float(all(a < b for a, b in pairwise(by_budget))), split=prefix)
    ctx.record("level_span", by_budget[-1] - by_budget[0], split=prefix)


FAMILIES = {
    "sft": Family("sft", "the verbose SFT model, sampled as it is", SFTArgs),
    "ts": Family("ts", "temperature scaling of the end-of-thinking logit (swept, tuned on val)", TSArgs),
    "budget_forcing": Family("budget_forcing", "s1 budget forcing: force </think> at a budget; optional Wait "
                             "extension before it", BudgetArgs),
    "tldr": Family("tldr", "length-regularised GRPO with short/medium/long level tokens", TLDRArgs),
}

METHOD = Method(
    name="tldr",
    paper="arXiv 2505.07961",
    families=FAMILIES,
    run=run,
    benchmarks=("verbose_sum", "math_reasoning"),
    stages={"sft_model": Family("sft_model", "verbose SFT model trained from scratch", SFTStageArgs)},
    run_stage=run_stage,
    metrics=(
        Metric("token_reduction_vs_sft", True, "1 - mean tokens / the SFT model's mean tokens"),
        Metric("accuracy_change_vs_sft", True, "accuracy minus the SFT model's accuracy"),
        Metric("operating_point", True, "the TS scale or token budget chosen on val"),
        Metric("accuracy_at_tokens", True, "accuracy interpolated at a mean-token count (step)"),
        Metric("accuracy_matched_tokens", True, "mean accuracy over the matched token counts"),
        Metric("length_error", False, "|mean tokens - level budget| / budget"),
        Metric("levels_ordered", True, "1 when mean tokens rise with the level budget (short<medium<long)"),
        Metric("level_span", True, "mean tokens at the longest level minus at the shortest"),
        Metric("wrong_over_correct_tokens", True, "mean tokens of wrong answers / of right answers"),
        Metric("reward", True, "TLDR training reward"),
        Metric("zero_variance_fraction", False, "share of GRPO groups with equal rewards"),
    ),
)
