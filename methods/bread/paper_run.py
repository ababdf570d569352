"""BREAD's paper profile (arXiv 2506.17211, Sec. 5): a Qwen2.5-Instruct student, SFT on s1K-style expert
traces, then GRPO / SFT+GRPO / BREAD on NuminaMath-CoT problems with ``math-verify`` rewards, evaluated on
the ``math_reasoning`` benchmark's sets (MATH500, AIME24, AMC, OlympiadBench).

The same engine and branching search as smoke (``methods.rl``, ``methods.bread.branching``): only the
student (a transformers causal LM by hub id or path), the data (``methods.bread.paper`` loaders) and the
reward (``math_verify_rewards`` on the decoded solution) change. Episodes are paragraphs of the expert's
written solution, so a branch prefix is a token prefix at an episode boundary (``episode_token_ends``).
Rollouts use vLLM when installed (weights pushed after each update) and transformers ``generate`` otherwise.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import torch

from methods.bread.branching import branch_failed_groups, concat_generations
from methods.bread.paper import (
    ExpertProblem,
    episode_token_ends,
    load_expert_problems,
    load_student,
    math_verify_rewards,
)
from methods.core.api import RunContext
from methods.core.training import TrainConfig, train
from methods.rl import GRPOConfig, GRPOLearner, HFGenerateSampler, VLLMSampler, as_logits_fn, rollout, sft_loss
from methods.rl.generation import Generation, Sampler, right_pad

STUDENT_DIR, STAGE_FILE = "student", "stage.json"
# The instruction Qwen2.5-Math evaluations append, so the final answer is boxed (math-verify parses it).
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
# An Instruct student writes no thinking block: its whole response is the answer, so the benchmark's
# end-of-thinking marker is put in front of it before ``math_reasoning.score``.
ANSWER_MARK = "</think>"


def prompt_text(tokenizer: Any, problem: str) -> str:
    """The chat-formatted question (a tokenizer without a chat template gets a plain prompt)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": f"{problem}\n{INSTRUCTION}"}],
                                             tokenize=False, add_generation_prompt=True)
    return f"Problem: {problem}\n{INSTRUCTION}\nSolution: "


def encode_prompt(tokenizer: Any, problem: str) -> torch.Tensor:
    return torch.tensor(tokenizer(prompt_text(tokenizer, problem), add_special_tokens=False)["input_ids"])


def encode_expert(tokenizer: Any, problems: list[ExpertProblem], max_trace_tokens: int
                  ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Prompts, traces (+EOS, cut to ``max_trace_tokens``) and (episodes+1,) token ends per problem."""
    prompts, traces, ends = [], [], []
    for p in problems:
        ids, episode_ends = episode_token_ends(tokenizer, p.trace)
        ids = ids[:max_trace_tokens]
        cut = [e for e in episode_ends if e < len(ids)]
        prompts.append(encode_prompt(tokenizer, p.problem))
        traces.append(torch.tensor([*ids, tokenizer.eos_token_id]))
        ends.append(torch.tensor([0, *cut, len(ids) + 1]))  # the last episode carries the EOS
    return prompts, traces, ends


def _student_source(ctx: RunContext) -> tuple[str, dict]:
    """The stage's fine-tuned student (``after: sft``) or the base model named by ``model``."""
    if ctx.inputs:
        (stage_dir,) = ctx.inputs.values()
        return str(Path(stage_dir) / STUDENT_DIR), json.loads((Path(stage_dir) / STAGE_FILE).read_text())
    if not ctx.args.model:
        raise ValueError(f"variant '{ctx.variant}' needs `model:` (hub id or path) or `after: sft`")
    return ctx.args.model, {"cpu_seconds": 0.0, "steps": 0}


def run_stage(ctx: RunContext) -> None:
    """SFT on the expert traces (s1K-style): teacher forcing on prompt -> trace tokens, saved by path."""
    args = ctx.args
    if not args.model:
        raise ValueError("the BREAD paper SFT stage needs `model:` (a hub id or a local path)")
    model, tokenizer = load_student(args.model, ctx.dtype, ctx.device)
    problems = load_expert_problems(args.sft_data, args.num_sft_problems)
    if not problems:
        raise ValueError(f"no usable expert traces in {args.sft_data}")
    prompts, traces, _ = encode_expert(tokenizer, problems, args.max_trace_tokens)
    rows = [torch.cat([p, t]) for p, t in zip(prompts, traces, strict=True)]
    tokens = right_pad(rows, tokenizer.pad_token_id).to(ctx.device)
    pos = torch.arange(1, tokens.shape[1])[None, :]
    start = torch.tensor([p.numel() for p in prompts])[:, None]
    end = torch.tensor([r.numel() for r in rows])[:, None]
    mask = ((pos >= start) & (pos < end)).float().to(ctx.device)
    logits_fn = as_logits_fn(model)
    cpu0 = time.process_time()
    train(model, TrainConfig(steps=args.sft_steps, batch_size=args.sft_batch_size, lr=args.sft_lr,
                             weight_decay=0.0, log_every=max(1, args.sft_steps // 10)),
          lambda idx: sft_loss(logits_fn, tokens[idx], mask[idx]), len(rows),
          torch.Generator().manual_seed(ctx.seed), ctx.device, ctx.dtype, log=ctx.log)
    model.save_pretrained(ctx.out_dir / STUDENT_DIR)
    tokenizer.save_pretrained(ctx.out_dir / STUDENT_DIR)
    (ctx.out_dir / STAGE_FILE).write_text(json.dumps({"cpu_seconds": time.process_time() - cpu0,
                                                      "steps": args.sft_steps}))


def make_sampler(ctx: RunContext, model: Any, tokenizer: Any, source: str) -> Sampler:
    """vLLM when asked for and installed, else transformers ``generate`` (the CPU fallback)."""
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if ctx.args.backend == "vllm":
        try:
            return VLLMSampler(source, pad, eos, dtype=str(ctx.dtype).removeprefix("torch."))
        except ImportError:
            ctx.log("vllm is not installed: rollouts use transformers generate")
    elif ctx.args.backend != "hf":
        raise ValueError(f"backend must be 'vllm' or 'hf', got {ctx.args.backend!r}")
    return HFGenerateSampler(model, pad, eos)


def solution_reward(tokenizer: Any, prompts: list[torch.Tensor], answers: list[str]):
    """math-verify on the whole written solution after the question (expert prefix + student completion)."""
    base = torch.tensor([p.numel() for p in prompts])

    def reward(gen: Generation, ids: torch.Tensor) -> torch.Tensor:
        stop = gen.prompt_lengths + gen.completion_lengths
        texts = [tokenizer.decode(gen.tokens[r, int(base[i]): int(stop[r])], skip_special_tokens=True)
                 for r, i in enumerate(ids.tolist())]
        return math_verify_rewards(texts, [answers[i] for i in ids.tolist()])

    return reward


def evaluate_sets(ctx: RunContext, model: Any, tokenizer: Any, test: dict[str, list]) -> None:
    """Greedy answers on every evaluation set, scored by the ``math_reasoning`` benchmark (math-verify)."""
    sampler = HFGenerateSampler(model, tokenizer.pad_token_id, tokenizer.eos_token_id)
    model.eval()
    macro: dict[str, list[float]] = {}
    for name, problems in test.items():
        prompts = [encode_prompt(tokenizer, p.problem) for p in problems]
        texts, lengths = [], []
        for s in range(0, len(prompts), ctx.args.eval_batch_size):
            gen = sampler.sample(prompts[s: s + ctx.args.eval_batch_size], ctx.args.max_new_tokens,
                                 temperature=0.0)
            for r in range(gen.tokens.shape[0]):
                start = int(gen.prompt_lengths[r])
                texts.append(ANSWER_MARK + tokenizer.decode(
                    gen.tokens[r, start: start + int(gen.completion_lengths[r])], skip_special_tokens=True))
            lengths.append(gen.completion_lengths)
        metrics = ctx.benchmark.score(texts, problems, torch.cat(lengths))
        metrics.pop("unfinished", None)  # always 0 here: the marker is added, not written by the student
        ctx.record_all(metrics, split=f"test_{name}")
        for k, v in metrics.items():
            macro.setdefault(k, []).append(v)
    ctx.record_all({k: sum(v) / len(v) for k, v in macro.items() if len(v) == len(test)}, split="test")
    model.train()


def run(ctx: RunContext) -> None:
    source, stage = _student_source(ctx)
    model, tokenizer = load_student(source, ctx.dtype, ctx.device)
    data = ctx.load_data()
    ctx.log(f"{ctx.variant}: student {source}, {sum(p.numel() for p in model.parameters()):,} parameters")
    if ctx.family != "sft":
        rl_loop(ctx, model, tokenizer, source, stage)
    else:
        ctx.record("train_cpu_seconds", stage["cpu_seconds"])
    evaluate_sets(ctx, model, tokenizer, data["test"])


def rl_loop(ctx: RunContext, model: Any, tokenizer: Any, source: str, stage: dict) -> None:
    """GRPO (DAPO loss) on NuminaMath-CoT problems; BREAD branches every all-failed group from expert anchors."""
    args = ctx.args
    problems = load_expert_problems(args.rl_data, args.num_rl_problems)
    if not problems:
        raise ValueError(f"no RL problems with checkable answers in {args.rl_data}")
    prompts, traces, ends = encode_expert(tokenizer, problems, args.max_trace_tokens)
    reward = solution_reward(tokenizer, prompts, [p.answer for p in problems])
    episodes = torch.tensor([e.numel() - 1 for e in ends])
    trace_tokens = torch.tensor([t.numel() for t in traces], dtype=torch.float)
    cfg = GRPOConfig(group_size=args.group_size, lr=args.rl_lr, loss_type=args.loss_type,
                     epsilon_high=args.epsilon_high, beta=args.beta)
    ref = copy.deepcopy(model).requires_grad_(False) if args.beta else None
    learner = GRPOLearner(model, cfg, ref_model=ref)
    sampler = make_sampler(ctx, model, tokenizer, source)
    rng = torch.Generator().manual_seed(ctx.seed)
    use_bread = ctx.family == "bread"
    cpu_start = time.process_time() - stage["cpu_seconds"]
    expert_used = expert_total = 0.0
    zero_var, guided = [], []
    for step in range(1, args.rl_steps + 1):
        ids = torch.randint(0, len(problems), (args.prompts_per_step,), generator=rng)
        with torch.no_grad():
            gen, rewards, _ = rollout(sampler, [prompts[i] for i in ids.tolist()], ids, reward, args.group_size,
                                      args.max_new_tokens, 1.0, rng)
        grouped = rewards.view(-1, args.group_size)
        failed = grouped.max(1).values == 0
        zero_var.append((grouped.max(1).values == grouped.min(1).values).float().mean().item())
        expert_total += float(trace_tokens[ids].sum())
        if use_bread:
            guided.append(failed.float().mean().item())
        if use_bread and bool(failed.any()):
            with torch.no_grad():
                branched = branch_failed_groups(sampler, prompts, traces, episodes, ids[failed], reward,
                                                args.group_size, 1.0, rng, slack=args.max_new_tokens,
                                                episode_ends=ends)
            keep = (~failed).repeat_interleave(args.group_size)
            kept = Generation(gen.tokens[keep], gen.prompt_lengths[keep], gen.completion_lengths[keep], gen.pad_id)
            gen = concat_generations([kept, branched.generation]) if bool(keep.any()) else branched.generation
            rewards = torch.cat([rewards[keep], branched.rewards])
            expert_used += sum(float(ends[int(pid)][int(j)]) for pid, j in
                               zip(ids[failed].tolist(), branched.prefix_episodes.tolist(), strict=True))
        stats = learner.update(gen, rewards, ctx.device)
        if isinstance(sampler, VLLMSampler):  # pragma: no cover - GPU only
            sampler.sync_weights(model)
        if step % args.log_every == 0 or step == args.rl_steps:
            ctx.record("reward", stats["reward"], split="train", step=step)
            ctx.record("zero_variance_fraction", zero_var[-1], split="train", step=step)
            ctx.log(f"step {step}: reward {stats['reward']:.3f} zero-var {zero_var[-1]:.2f}")
    ctx.record("zero_variance_fraction", sum(zero_var) / len(zero_var), split="train")
    if use_bread:
        ctx.record("expert_token_fraction", expert_used / max(expert_total, 1.0), split="train")
        ctx.record("guided_group_fraction", sum(guided) / len(guided), split="train")
    ctx.record("train_cpu_seconds", time.process_time() - cpu_start)
