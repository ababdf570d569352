"""FedYolo (arXiv 2307.04905): one pretrained transformer, federated through small modules.

Stage ``pretrain``: a TinyViT trained centrally on the benchmark's source task (smoke); at paper scale
the hub checkpoint is the pretrained model and no stage runs.

Family ``suite``: one Flower simulation per seed that runs every configured *arm* (full FedAvg, LoRA,
prompts, adapters, head-only, local-only, the local-epochs sweep, the task sequence) one after the
other on the same clients and client draws. Each arm's rows are filed under the arm's id as the
variant, so the leaderboard compares arms like variants. Why one simulation for all arms: starting Ray
and importing torch/peft in its workers costs several CPU-seconds per simulation (the ``ray_cpu_seconds``
row), more than the smoke arms' training itself.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from methods.core.api import Family, Method, Metric, RunContext
from methods.core.config import ConfigError, build_args
from methods.core.seeding import derive_seed
from methods.fedyolo.local import predict, train_epochs
from methods.fedyolo.modules import ModuleSpec, attach, set_trainable
from methods.fedyolo.setup import ArmSpec, Setup
from methods.fedyolo.vit import TinyViTConfig, save_tiny_vit, tiny_vit_classifier

CHECKPOINT = "tiny_vit.pt"


@dataclass
class PretrainArgs:
    patch: int = 8
    d_model: int = 96
    n_layers: int = 3
    n_heads: int = 4
    epochs: int = 5
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05


@dataclass
class SuiteArgs:
    arms: dict[str, Any] = field(default_factory=lambda: {"full": {"module": "full", "lr": 1e-3},
                                                          "lora": {"module": "lora"}})
    backbone: str = ""  # hub id or local path of a transformers ViT; empty: the `pretrain` stage's TinyViT
    rounds: int = 8
    clients_per_round: int = 4
    target_accuracy: float = 0.7
    batch_size: int = 32


def run_stage(ctx: RunContext) -> None:
    """Pretrain the TinyViT on the source task and save the encoder (the heads are task-specific)."""
    args: PretrainArgs = ctx.args
    data = ctx.load_data()
    if data.source is None:
        raise ValueError("the pretrain stage needs a benchmark with a source task (dataset: mnist1d)")
    src = data.source
    cfg = TinyViTConfig(in_channels=src.x_train.shape[1], length=src.x_train.shape[-1], patch=args.patch,
                        d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads)
    with torch.random.fork_rng(devices=[]):  # module constructors draw from torch's global RNG
        torch.manual_seed(derive_seed("pretrain-init", ctx.seed))
        model = tiny_vit_classifier(cfg).to(ctx.device)
    generator = torch.Generator().manual_seed(ctx.seed)
    params = set_trainable(model, attach(model, "source", src.num_classes, ModuleSpec("full"), generator))
    model.to(ctx.device)
    for epoch in range(1, args.epochs + 1):
        loss = train_epochs(model, "source", src.x_train, src.y_train, params, 1, args.batch_size, args.lr,
                            args.weight_decay, generator, ctx.device, ctx.dtype)
        acc = (predict(model, "source", src.x_test, ctx.device, dtype=ctx.dtype) == src.y_test).float().mean().item()
        ctx.log(f"pretrain epoch {epoch}/{args.epochs}: loss {loss:.3f}, source test accuracy {acc:.3f}")
    save_tiny_vit(model.cpu(), ctx.out_dir / CHECKPOINT)


def parse_arms(arms: dict[str, Any]) -> dict[str, ArmSpec]:
    if not arms:
        raise ConfigError("config key 'arms' is empty: give at least one arm, e.g. {lora: {module: lora}}")
    out = {}
    for name, values in arms.items():
        if not str(name).isidentifier() or not str(name).islower():
            raise ConfigError(f"config key 'arms.{name}': arm ids are lower-case identifiers")
        try:
            out[name] = build_args(ArmSpec, dict(values or {}), f"arms.{name}")
        except ValueError as err:
            raise ConfigError(f"config key 'arms.{name}': {err}") from err
    return out


def run(ctx: RunContext) -> None:
    from methods.fedyolo.client_app import make_client_app
    from methods.fedyolo.server_app import Federation, ServerConfig
    from methods.fedyolo.simulation import simulate

    args: SuiteArgs = ctx.args
    arms = parse_arms(args.arms)
    data = ctx.load_data()
    if args.backbone:
        backbone, kind = args.backbone, "hf"
    elif "pretrain" in ctx.inputs:
        backbone, kind = str((ctx.inputs["pretrain"] / CHECKPOINT).resolve()), "tiny"
    else:
        raise ConfigError("variant 'suite' needs `after: pretrain` or a `backbone` (hub id or local path)")
    setup = Setup(data=data, backbone=backbone, backbone_kind=kind, arms=arms, seed=ctx.seed,
                  batch_size=args.batch_size, device=str(ctx.device), dtype=ctx.dtype,
                  threads=torch.get_num_threads())
    job_variant = ctx.variant

    def record(arm: str, metric: str, value: float, split: str = "test", step: float | None = None) -> None:
        ctx.variant = arm  # each arm is filed as a variant of its own
        try:
            ctx.record(metric, value, split=split, step=step)
        finally:
            ctx.variant = job_variant

    federation = Federation(setup, ServerConfig(rounds=args.rounds, clients_per_round=args.clients_per_round,
                                                target_accuracy=args.target_accuracy), record, ctx.log)
    started = time.process_time()
    ray_cpu = simulate(federation.run, make_client_app(setup), ctx.data_args.num_clients,
                       key=f"{ctx.out_dir}", threads=torch.get_num_threads(),
                       gpus_per_client=1.0 if ctx.device.type == "cuda" else 0.0, log=ctx.log)
    driver = resource.getrusage(resource.RUSAGE_SELF)
    ctx.record("ray_cpu_seconds", ray_cpu)
    ctx.record("server_cpu_seconds", time.process_time() - started)
    # the whole job's CPU: this process from its start (imports, data, server) plus Ray's processes;
    # the manifest's cpu_seconds counts this process only
    ctx.record("job_cpu_seconds", driver.ru_utime + driver.ru_stime + ray_cpu)
    ctx.log(f"simulation done: server {time.process_time() - started:.1f} CPU-s, ray {ray_cpu:.1f} CPU-s")


FAMILIES = {"suite": Family("suite", "every arm (module kind, local epochs, task sequence) in one Flower "
                            "simulation", SuiteArgs)}
STAGES = {"pretrain": Family("pretrain", "TinyViT pretrained on the benchmark's source task", PretrainArgs)}

METHOD = Method(
    name="fedyolo",
    paper="arXiv 2307.04905",
    families=FAMILIES,
    run=run,
    benchmarks=("federated_vision",),
    stages=STAGES,
    run_stage=run_stage,
    metrics=(
        Metric("bits_total", False, "bits of arrays sent and received over all rounds"),
        Metric("bits_per_round", False, "bits of arrays sent and received in a round"),
        Metric("communicated_parameters", False, "parameters in one module update"),
        Metric("rounds_to_target", False, "first round whose global accuracy reaches the target "
                                          "(rounds + 1 when never reached)"),
        Metric("forgetting", False, "accuracy lost on earlier tasks after learning later ones"),
        Metric("ray_cpu_seconds", False, "CPU seconds of Ray's processes (client actors included)"),
        Metric("server_cpu_seconds", False, "CPU seconds of the driver during the simulation"),
        Metric("job_cpu_seconds", False, "CPU seconds of the whole suite job: driver and Ray's processes"),
    ),
)


def checkpoint_path(stage_dir: Path) -> Path:
    return stage_dir / CHECKPOINT
