"""CoT2 jobs: SFT stages (discrete, CSFT), SFT variants, stage evaluation and GRPO variants.

Families (``family:`` in the config):

- ``no_cot``, ``discrete_sft``, ``cot2_csft``: train from scratch, then evaluate.
- ``evaluate``: evaluate a stage's checkpoint as it is (the starting point GRPO is compared with).
- ``grpo``: policy optimisation from a stage's checkpoint (``after:``) with MTS (K tokens; K = 1 is
  discrete GRPO) or Dirichlet rollouts.

Stages (``stages:`` in the config): ``discrete_sft``, ``cot2_csft``; they write ``model.pt``, ``model.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmarks.reasoning import ReasoningSplit
from methods.core.api import Family, RunContext
from methods.cot2.decode import rollout_batched, step_entropy
from methods.cot2.grpo import GRPOSettings, train_grpo
from methods.cot2.model import build_gpt2
from methods.cot2.sft import lr_factor, top_beam_targets, train_epochs


@dataclass
class ModelArgs:
    n_layers: int = 2
    n_heads: int = 2
    d_model: int = 24
    dropout: float = 0.0  # official GPT2Config default is 0.1; 0 here (tiny models, short smoke runs)
    pass_k: int = 16  # discrete variants: draws per test prompt for pass@k (0 = off)
    curve_every: int = 0  # > 0: test accuracy every this many epochs (SFT) or steps (GRPO)
    eval_batch: int = 4096
    decode: str = ""  # evaluation decoder; "" = the family's own (see DEFAULT_DECODE)
    hf_model: bool = False  # True: transformers' GPT2LMHeadModel; False: its import-free twin (same params)


@dataclass
class SFTArgs(ModelArgs):
    epochs: int = 1000  # arXiv 2505.23648 App.: 1000 CSFT epochs; official lr 1e-4, batch 16
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01  # torch AdamW default, as the official optimiser
    top_beams: int = 0  # CSFT only: > 0 builds targets from the B best traces (MNNS)
    compile_step: bool = False  # torch.compile the fused step: pays off for long runs (~10 CPU-s compile)
    lr_schedule: str = "constant"  # "constant" (official) or "cosine": warmup then cosine decay to 0
    lr_warmup: float = 0.0  # cosine only: warmup as a fraction of all optimiser steps

    def __post_init__(self) -> None:
        lr_factor(self.lr_schedule, 1, self.lr_warmup)  # a bad schedule fails when the config is read


@dataclass
class EvaluateArgs(ModelArgs):
    k: int = 1  # for decode "mts"


@dataclass
class GRPOArgs(ModelArgs):
    sampling: str = "mts"  # "mts" (K tokens averaged) or "dirichlet"
    k: int = 1
    normalize: bool = True  # MTS draws from softmax(logits / K) (official sampling_normalization)
    dirichlet_scale: float = 1.0
    steps: int = 100
    prompts_per_step: int = 16
    rollouts: int = 8
    lr: float = 5e-6  # official MTS-GRPO
    weight_decay: float = 0.01
    clip_epsilon: float = 0.1
    beta: float = 0.0  # KL to the start model (official kl_coeff 0)


SUPERVISION = {"no_cot": "no_cot", "discrete_sft": "discrete", "cot2_csft": "csft"}
DEFAULT_DECODE = {"no_cot": "greedy", "discrete_sft": "greedy", "cot2_csft": "continuous"}


def _model_for(args: ModelArgs, split: ReasoningSplit, device: torch.device | str = "cpu"):
    """The model, initialised on the CPU (the same weights whatever the device), then moved to ``device``."""
    n_positions = split.prompt.shape[1] + split.num_steps
    return build_gpt2(split.vocab_size, n_positions, args.d_model, args.n_layers, args.n_heads, args.dropout,
                      hf=args.hf_model).to(device)


def _generator(ctx: RunContext, offset: int = 0) -> torch.Generator:
    """A sampling generator on the job's device (CUDA sampling needs a CUDA generator), seeded from the run."""
    return torch.Generator(device=ctx.device).manual_seed(ctx.seed + offset)


def _splits(ctx: RunContext) -> tuple[ReasoningSplit, ReasoningSplit]:
    data = ctx.load_data()
    return data["train"].to(ctx.device), data["test"].to(ctx.device)


def _save(model, args: ModelArgs, family: str, out: Path) -> None:
    # CPU tensors in the file, so a stage trained on a GPU loads anywhere (``_load`` maps to the job's device)
    state = model.state_dict()
    for name, tensor in state.items():
        state[name] = tensor.cpu()  # the same tensor on a CPU job
    torch.save(state, out / "model.pt")
    (out / "model.json").write_text(json.dumps({"family": family, "args": asdict(args)}, indent=1))


def _load(stage_dir: Path, split: ReasoningSplit, device: torch.device | str = "cpu"):
    meta = json.loads((stage_dir / "model.json").read_text())
    args = SFTArgs(**meta["args"])
    model = _model_for(args, split, device)
    model.load_state_dict(torch.load(stage_dir / "model.pt", weights_only=True, map_location=device))
    return model, meta["family"]


def evaluate(ctx: RunContext, model, test: ReasoningSplit, decode: str, *, k: int = 1,
             step: float | None = None, final: bool = True) -> float:
    """Record accuracy (and, when final, per-step entropy, discrete pass@k and a few samples)."""
    args: ModelArgs = ctx.args
    S = test.num_steps if ctx.family != "no_cot" else 0
    gen = _generator(ctx, 1)
    out = rollout_batched(model, test.prompt, S, decode, batch_size=args.eval_batch, k=k, generator=gen)
    acc = ctx.benchmark.score(out.answer, test)["accuracy"]
    ctx.record("accuracy", acc, split="test", step=step)
    if not final:
        return acc
    for t, h in enumerate(step_entropy(out.step_probs).tolist(), start=1):
        ctx.record("token_entropy", h, split="test", step=t)
    # a policy that ignores its input and gives one answer scores this share of the test set: accuracy at
    # answer_mode_share == majority_answer_share is a collapsed policy, not a learned one
    ctx.record("answer_mode_share", mode_share(out.answer), split="test")
    ctx.record("majority_answer_share", mode_share(test.answer), split="test")
    if args.pass_k and decode in ("greedy", "sample") or (args.pass_k and decode == "mts" and k == 1):
        reps = test.prompt.repeat_interleave(args.pass_k, 0)
        draws = rollout_batched(model, reps, S, "sample", batch_size=args.eval_batch, generator=gen)
        ctx.record_all(ctx.benchmark.score(draws.answer.view(len(test), args.pass_k), test), split="test")
    for i in range(min(8, len(test))):
        ctx.sample(index=i, prompt=[test.vocab[t] for t in test.prompt[i].tolist() if t != 0],
                   target=test.vocab[int(test.answer[i])], prediction=test.vocab[int(out.answer[i])],
                   decode=decode)
    return acc


def mode_share(answers: torch.Tensor) -> float:
    """Share of ``answers`` equal to their most common value."""
    return float(answers.unique(return_counts=True)[1].max()) / len(answers)


def _train_sft(ctx: RunContext, family: str):
    args: SFTArgs = ctx.args
    train, test = _splits(ctx)
    model = _model_for(args, train, ctx.device)
    ctx.log(f"{family}: {args.n_layers}L {args.n_heads}H d={args.d_model}, {len(train)} train / "
            f"{len(test)} test, "
            f"{sum(p.numel() for p in model.parameters()):,} parameters")
    targets = top_beam_targets(train, args.top_beams) if (family == "cot2_csft" and args.top_beams) else None
    decode = args.decode or DEFAULT_DECODE[family]

    def on_epoch(epoch: int, loss: float) -> None:
        if args.curve_every and epoch % args.curve_every == 0:
            acc = evaluate(ctx, model, test, decode, step=epoch, final=False)
            ctx.record("train_loss", loss, split="train", step=epoch)
            ctx.log(f"epoch {epoch}/{args.epochs} loss {loss:.4f} test accuracy {acc:.3f}")

    train_epochs(model, SUPERVISION[family], train, epochs=args.epochs, batch_size=args.batch_size,
                 lr=args.lr, weight_decay=args.weight_decay,
                 generator=_generator(ctx), targets=targets, on_epoch=on_epoch, compile_step=args.compile_step,
                 lr_schedule=args.lr_schedule, lr_warmup=args.lr_warmup)
    return model, test, decode


def run_stage(ctx: RunContext) -> None:
    model, test, decode = _train_sft(ctx, ctx.family)
    _save(model, ctx.args, ctx.family, ctx.out_dir)


def run(ctx: RunContext) -> None:
    if ctx.family in SUPERVISION:
        model, test, decode = _train_sft(ctx, ctx.family)
        evaluate(ctx, model, test, decode)
        return
    if len(ctx.inputs) != 1:
        raise ValueError(f"cot2 variant '{ctx.variant}' ({ctx.family}) starts from a stage: "
                         f"give it `after: <stage>`")
    train, test = _splits(ctx)
    model, start_family = _load(next(iter(ctx.inputs.values())), train, ctx.device)
    args = ctx.args
    if ctx.family == "evaluate":
        evaluate(ctx, model, test, args.decode or DEFAULT_DECODE[start_family], k=args.k)
        return
    decode = args.decode or ("dirichlet" if args.sampling == "dirichlet" else "mts")
    evaluate(ctx, model, test, decode, k=args.k, step=0, final=False)
    settings = GRPOSettings(sampling=args.sampling, k=args.k, normalize=args.normalize,
                            dirichlet_scale=args.dirichlet_scale, steps=args.steps,
                            prompts_per_step=args.prompts_per_step, rollouts=args.rollouts, lr=args.lr,
                            weight_decay=args.weight_decay, clip_epsilon=args.clip_epsilon, beta=args.beta)

    def on_step(step: int, stats: dict[str, float]) -> None:
        ctx.record("train_reward", stats["reward"], split="train", step=step)
        if args.curve_every and step % args.curve_every == 0:
            acc = evaluate(ctx, model, test, decode, k=args.k, step=step, final=False)
            ctx.log(f"grpo step {step}/{args.steps} reward {stats['reward']:.3f} test accuracy {acc:.3f}")

    train_grpo(model, train, settings, _generator(ctx), on_step=on_step)
    evaluate(ctx, model, test, decode, k=args.k)


FAMILIES = {
    "no_cot": Family("no_cot", "answer right after the prompt (no chain of thought)", SFTArgs),
    "discrete_sft": Family("discrete_sft", "discrete CoT SFT on one valid trace", SFTArgs),
    "cot2_csft": Family("cot2_csft", "CoT2 continuous SFT on the traces' per-step token distributions",
                        SFTArgs),
    "evaluate": Family("evaluate", "a stage's checkpoint evaluated as it is (GRPO's starting point)",
                       EvaluateArgs),
    "grpo": Family("grpo", "GRPO with MTS (K tokens; K=1 discrete) or Dirichlet rollouts, from a stage",
                   GRPOArgs),
}
STAGES = {
    "discrete_sft": Family("discrete_sft", "discrete CoT SFT checkpoint", SFTArgs),
    "cot2_csft": Family("cot2_csft", "CoT2 CSFT checkpoint", SFTArgs),
}
