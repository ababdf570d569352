"""BREAD vs SFT, GRPO and SFT+GRPO on chain reasoning: one student, one RL engine (methods/rl).

Families: ``sft`` (evaluate the shared SFT stage), ``grpo`` (GRPO; from scratch, or from the SFT stage
with ``after: sft`` = SFT+GRPO), ``bread`` (GRPO + branched rollouts from expert anchors). Every RL
variant runs the same engine, sampler, batch sizes and number of updates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from benchmarks.chain_reasoning import EOS, PAD, ChainSplit, score
from methods.bread.branching import branch_failed_groups, concat_generations
from methods.core.api import Family, Method, Metric, RunContext
from methods.core.training import TrainConfig, train
from methods.nn import LMConfig, TinyLM
from methods.rl import GRPOConfig, GRPOLearner, TorchSampler, rollout, sft_loss
from methods.rl.generation import Generation, right_pad


@dataclass
class StudentArgs:
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 2
    pass_k: int = 8
    eval_problems: int = 256  # test problems per split at the end
    curve_problems: int = 64  # test problems per split at each curve point
    # Paper profile only (benchmark math_reasoning, methods/bread/paper_run.py); unused on chain_reasoning.
    model: str | None = None  # student: paper name (qwen2.5-1.5b), hub id or local path
    sft_data: str = "s1k"  # expert traces for the SFT stage: s1k, numina, hub id or local jsonl
    rl_data: str = "numina"  # RL problems with expert traces (BREAD's anchors)
    num_sft_problems: int | None = None
    num_rl_problems: int | None = None
    max_trace_tokens: int = 4096
    max_new_tokens: int = 4096
    eval_batch_size: int = 64
    backend: str = "vllm"  # rollouts: vllm (lazy import; falls back to transformers generate) or hf
    log_every: int = 10


@dataclass
class SFTArgs(StudentArgs):
    sft_steps: int = 300
    sft_batch_size: int = 32
    sft_lr: float = 3e-3
    # Scarce expert traces (arXiv 2506.17211's "small LM, scarce expert traces" setting): SFT sees only
    # this many training traces, half easy and half hard (None: all). RL still anchors on every problem.
    sft_traces: int | None = None


@dataclass
class GRPOArgs(StudentArgs):
    rl_steps: int = 150
    prompts_per_step: int = 8
    group_size: int = 8
    rl_lr: float = 1e-3
    loss_type: str = "dapo"
    epsilon_high: float = 0.28  # DAPO's clip-higher (arXiv 2503.14476)
    beta: float = 0.0
    eval_every: int = 25
    target_accuracy: float = 0.5  # hard-split greedy accuracy whose first crossing gives steps/time-to-target


@dataclass
class BreadArgs(GRPOArgs):
    pass


def build_student(args: StudentArgs, vocab: int) -> TinyLM:
    return TinyLM(LMConfig(vocab_size=vocab, d_model=args.d_model, n_layers=args.n_layers,
                           n_heads=args.n_heads,
                           mixer="attention", mixer_args={"rope": True}))


def make_reward(split: ChainSplit):
    """The only RL signal: 1 if the solution (expert prefix + student completion) is the whole correct chain.

    The chain of states is the verifiable answer (like a move sequence checked by a verifier), so an
    untrained student succeeds with probability ~vocab^-K: exponentially small in the steps. Each step may
    be written plainly (the state) or in the expert's style (its planning token); both are checked.
    """
    base = torch.tensor([p.numel() for p in split.prompts])
    expert = right_pad([t[:-1] for t in split.traces], PAD)  # (n, K_max) expert step tokens, EOS dropped
    plain = right_pad([t[:-1] for t in (split.plain or split.traces)], PAD)
    width = expert.shape[1]
    in_chain = torch.arange(width)[None, :] < split.steps[:, None]

    def reward(gen: Generation, ids: torch.Tensor) -> torch.Tensor:
        start = base[ids][:, None]
        pos = start + torch.arange(width)[None, :]
        written = pos < (gen.prompt_lengths + gen.completion_lengths)[:, None]
        sol = gen.tokens.gather(1, pos.clamp(max=gen.tokens.shape[1] - 1)).masked_fill(~written, PAD)
        right = (sol == expert[ids]) | (sol == plain[ids])
        return (right | ~in_chain[ids]).all(1).float()

    return reward


def evaluate(model: TinyLM, split: ChainSplit, n: int, k: int,
             generator: torch.Generator) -> dict[str, float]:
    """Greedy accuracy and pass@k (k samples at temperature 1) on the first n problems; k=0: accuracy only
    (the training curves), which skips the k sampled answers per problem."""
    model.eval()
    sampler = TorchSampler(model, PAD, EOS, next(model.parameters()).device)
    ids = torch.arange(min(n, len(split)))
    prompts = [split.prompts[i] for i in ids.tolist()]
    budget = split.steps[ids] + 2
    reward = make_reward(split)
    greedy = sampler.sample(prompts, budget, temperature=0.0)
    correct = reward(greedy, ids)[:, None]
    if k > 0:
        sampled = sampler.sample([p for p in prompts for _ in range(k)], budget.repeat_interleave(k),
                                 temperature=1.0, generator=generator)
        correct = torch.cat([correct, reward(sampled, ids.repeat_interleave(k)).view(-1, k)], 1)
    model.train()
    metrics = score(correct.bool(), k)
    return metrics if k > 0 else {"accuracy": metrics["accuracy"]}


def sft_rows(split: ChainSplit) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt + expert trace rows, right-padded, and the mask of trace tokens (aligned with tokens[:, 1:])."""
    rows = [torch.cat([p, t]) for p, t in zip(split.prompts, split.traces, strict=True)]
    tokens = right_pad(rows, PAD)
    pos = torch.arange(1, tokens.shape[1])[None, :]
    start = torch.tensor([p.numel() for p in split.prompts])[:, None]
    end = torch.tensor([r.numel() for r in rows])[:, None]
    return tokens, ((pos >= start) & (pos < end)).float()


def _paper(ctx: RunContext) -> bool:
    """The paper profile runs on the math_reasoning benchmark (methods/bread/paper_run.py)."""
    return ctx.benchmark.name == "math_reasoning"


def run_stage(ctx: RunContext) -> None:
    """The shared SFT checkpoint: teacher forcing on every training problem's expert trace."""
    if _paper(ctx):
        from methods.bread import paper_run

        return paper_run.run_stage(ctx)
    args: SFTArgs = ctx.args
    data = ctx.load_data()
    train_split = data["train"]
    model = build_student(args, train_split.vocab_size).to(ctx.device)
    tokens, mask = sft_rows(train_split)
    if args.sft_traces is not None:
        half, n = len(train_split) // 2, args.sft_traces
        if not 2 <= n <= len(train_split):
            raise ValueError(f"sft_traces must be in [2, {len(train_split)}], got {n}")
        keep = torch.cat([torch.arange(n // 2), half + torch.arange(n - n // 2)])  # train: easy half, hard half
        tokens, mask = tokens[keep], mask[keep]
    tokens, mask = tokens.to(ctx.device), mask.to(ctx.device)
    cpu0 = time.process_time()
    train(model, TrainConfig(steps=args.sft_steps, batch_size=args.sft_batch_size, lr=args.sft_lr,
                             weight_decay=0.0, log_every=100),
          lambda idx: sft_loss(model, tokens[idx], mask[idx]), tokens.shape[0],
          torch.Generator().manual_seed(ctx.seed), ctx.device, ctx.dtype, log=ctx.log)
    torch.save({"state": model.state_dict(), "cpu_seconds": time.process_time() - cpu0,
                "steps": args.sft_steps}, ctx.out_dir / "student.pt")


def load_stage(ctx: RunContext, model: TinyLM) -> dict:
    if not ctx.inputs:
        return {"cpu_seconds": 0.0, "steps": 0}
    (stage_dir,) = ctx.inputs.values()
    ckpt = torch.load(stage_dir / "student.pt", map_location=ctx.device)
    model.load_state_dict(ckpt["state"])
    return ckpt


def run(ctx: RunContext) -> None:
    if _paper(ctx):
        from methods.bread import paper_run

        return paper_run.run(ctx)
    args: StudentArgs = ctx.args
    data = ctx.load_data()
    train_split = data["train"]
    model = build_student(args, train_split.vocab_size).to(ctx.device)
    stage = load_stage(ctx, model)
    ctx.log(f"{ctx.variant}: {model.num_parameters():,} parameters, start from "
            f"{'SFT checkpoint' if ctx.inputs else 'scratch'}")
    eval_gen = torch.Generator().manual_seed(ctx.seed + 1)
    if ctx.family == "sft":
        if not ctx.inputs:
            raise ValueError("variant family 'sft' needs 'after: <sft stage>' in the config")
        final_eval(ctx, model, data, eval_gen)
        ctx.record("train_cpu_seconds", stage["cpu_seconds"])
        return
    rl_loop(ctx, model, train_split, data, stage, eval_gen)


def final_eval(ctx: RunContext, model: TinyLM, data: dict[str, ChainSplit], gen: torch.Generator) -> None:
    args: StudentArgs = ctx.args
    for name in ("test_easy", "test_hard", "val_easy", "val_hard"):  # val_*: only with num_val > 0
        if name in data:
            ctx.record_all(evaluate(model, data[name], args.eval_problems, args.pass_k, gen), split=name)


def rl_loop(ctx: RunContext, model: TinyLM, train_split: ChainSplit, data: dict[str, ChainSplit], stage: dict,
            eval_gen: torch.Generator) -> None:
    args: GRPOArgs = ctx.args
    cfg = GRPOConfig(group_size=args.group_size, lr=args.rl_lr, loss_type=args.loss_type,
                     epsilon_high=args.epsilon_high, beta=args.beta)
    ref = None
    if args.beta:
        ref = build_student(args, train_split.vocab_size).to(ctx.device)
        ref.load_state_dict(model.state_dict())
        ref.requires_grad_(False)
    learner = GRPOLearner(model, cfg, ref_model=ref)
    sampler = TorchSampler(model, PAD, EOS, ctx.device)
    reward = make_reward(train_split)
    episodes = train_split.steps.clone()
    rng = torch.Generator().manual_seed(ctx.seed)
    use_bread = ctx.family == "bread"
    cpu_start, wall_start = time.process_time() - stage["cpu_seconds"], time.perf_counter()
    expert_used = expert_total = 0.0
    zero_var, guided = [], []
    reached: dict[str, float] | None = None
    for step in range(1, args.rl_steps + 1):
        ids = torch.randint(0, len(train_split), (args.prompts_per_step,), generator=rng)
        prompts = [train_split.prompts[i] for i in ids.tolist()]
        with torch.no_grad():
            gen, rewards, _ = rollout(sampler, prompts, ids, reward, args.group_size,
                                      train_split.steps[ids] + 2, 1.0, rng)
        grouped = rewards.view(-1, args.group_size)
        failed = grouped.max(1).values == 0
        zero_var.append((grouped.max(1).values == grouped.min(1).values).float().mean().item())
        expert_total += float(episodes[ids].sum())
        if use_bread and bool(failed.any()):
            with torch.no_grad():
                branched = branch_failed_groups(sampler, train_split.prompts, train_split.traces, episodes,
                                                ids[failed], reward, args.group_size, 1.0, rng)
            keep = (~failed).repeat_interleave(args.group_size)
            kept = Generation(gen.tokens[keep], gen.prompt_lengths[keep], gen.completion_lengths[keep], PAD)
            gen = concat_generations([kept, branched.generation]) if bool(keep.any()) else branched.generation
            rewards = torch.cat([rewards[keep], branched.rewards])
            expert_used += float(branched.prefix_episodes.sum())
            guided.append(failed.float().mean().item())
        elif use_bread:
            guided.append(0.0)
        stats = learner.update(gen, rewards, ctx.device)
        if step % args.eval_every == 0 or step == args.rl_steps:
            curve = {name: evaluate(model, data[name], args.curve_problems, 0, eval_gen)
                     for name in ("test_easy", "test_hard")}
            for name, metrics in curve.items():
                ctx.record("accuracy", metrics["accuracy"], split=name, step=step + stage["steps"])
            recent = zero_var[-args.eval_every:]
            ctx.record("zero_variance_fraction", sum(recent) / len(recent),
                       split="train", step=step + stage["steps"])
            if use_bread:
                ctx.record("expert_token_fraction", expert_used / expert_total, split="train",
                           step=step + stage["steps"])
            ctx.log(f"step {step}: reward {stats['reward']:.2f} zero-var {zero_var[-1]:.2f} "
                    f"easy {curve['test_easy']['accuracy']:.2f} hard {curve['test_hard']['accuracy']:.2f}")
            if reached is None and curve["test_hard"]["accuracy"] >= args.target_accuracy:
                reached = {"steps": step + stage["steps"], "cpu": time.process_time() - cpu_start,
                           "wall": time.perf_counter() - wall_start}
    final_eval(ctx, model, data, eval_gen)
    ctx.record("zero_variance_fraction", sum(zero_var) / len(zero_var), split="train")
    if use_bread:
        ctx.record("expert_token_fraction", expert_used / expert_total, split="train")
        ctx.record("guided_group_fraction", sum(guided) / len(guided), split="train")
    total_steps = args.rl_steps + stage["steps"]
    ctx.record("reached_target", float(reached is not None), split="test_hard")
    ctx.record("steps_to_target", reached["steps"] if reached else total_steps + args.eval_every,
               split="test_hard")
    ctx.record("cpu_seconds_to_target", reached["cpu"] if reached else time.process_time() - cpu_start,
               split="test_hard")
    ctx.record("train_cpu_seconds", time.process_time() - cpu_start)


STUDENT_METRICS = (
    Metric("zero_variance_fraction", False, "share of sampled groups with equal rewards (no GRPO signal)"),
    Metric("expert_token_fraction", False, "expert-trace episodes given as prefixes / all episodes seen"),
    Metric("guided_group_fraction", False, "share of groups that needed an expert prefix"),
    Metric("reached_target", True, "1 if hard-split accuracy reached target_accuracy during training"),
    Metric("steps_to_target", False, "SFT+RL steps until hard accuracy >= target (censored: budget+eval)"),
    Metric("cpu_seconds_to_target", False, "CPU seconds (SFT included) until hard accuracy >= target"),
    Metric("train_cpu_seconds", False, "CPU seconds of training (SFT stage included)"),
    Metric("reward", True, "mean RL reward of the step's rollouts (paper profile: math-verify correct)"),
)

METHOD = Method(
    name="bread",
    paper="arXiv 2506.17211",
    families={
        "sft": Family("sft", "the SFT checkpoint on expert traces, evaluated", StudentArgs),
        "grpo": Family("grpo", "GRPO (DAPO loss); with after: sft it is SFT+GRPO", GRPOArgs),
        "bread": Family("bread", "GRPO + branched rollouts from the shortest successful expert prefix",
                        BreadArgs),
    },
    stages={"sft": Family("sft", "teacher-forced SFT on the expert traces", SFTArgs)},
    run=run,
    run_stage=run_stage,
    benchmarks=("chain_reasoning", "math_reasoning"),
    metrics=STUDENT_METRICS,
)
