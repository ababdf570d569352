"""Offline validation probe: choose pretraining length and each arm's hyperparameters on task-1
VALIDATION accuracy, never on test (session 4; the numbers it printed are in the README).

Why not Flower/Ray here: a probe trial is the same FedAvg with full participation (every client every
round, as the smoke config runs it) and Ray's start-up (~14 CPU-s) would cost more than a trial. So this
runs the ClientApp's work in-process with the very same pieces: ``Setup.build_model`` (backbone + module),
``set_trainable``/``train_epochs`` (the client's round), ``fedavg`` (the server's average), and the
``pretrain`` stage's ``run_stage`` for the backbone. Client minibatch order is seeded differently from the
simulation (one generator per client per round here too), so numbers match the DAG's in distribution,
not bit for bit.

    python -m methods.fedyolo.tune --replicate 0 --pretrain-epochs 5 15 \
        --trial full:lr=1e-3 --trial lora:lr=1e-2,lora_rank=2,lora_alpha=4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import yaml

from benchmarks.federated_vision import FederatedVisionArgs, load
from methods.core.config import build_args
from methods.core.seeding import data_seed, derive_seed, run_seed
from methods.fedyolo.local import predict, train_epochs
from methods.fedyolo.modules import get_state, set_state, set_trainable
from methods.fedyolo.run import CHECKPOINT, PretrainArgs, run_stage
from methods.fedyolo.server_app import fedavg
from methods.fedyolo.setup import ArmSpec, Setup


def parse_trial(text: str) -> tuple[str, dict]:
    """``lora:lr=1e-2,lora_rank=2,lora_targets=q_proj+v_proj`` -> ("lora", {...})."""
    module, _, rest = text.partition(":")
    values: dict = {"module": module}
    for item in filter(None, rest.split(",")):
        key, _, raw = item.partition("=")
        values[key] = raw.split("+") if key == "lora_targets" else _scalar(raw)
    return text, values


def _scalar(raw: str) -> int | float | bool | str:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(raw.lower(), raw)


def pretrain(data, replicate: int, args: PretrainArgs, out: Path, log) -> Path:
    seed = run_seed(0, "federated_vision", "fedyolo", "pretrain", replicate)
    ctx = SimpleNamespace(args=args, load_data=lambda: data, seed=seed,
                          device=torch.device("cpu"), log=log, out_dir=out)
    out.mkdir(parents=True, exist_ok=True)
    run_stage(ctx)
    return out / CHECKPOINT


def fedavg_trial(data, backbone: Path, spec: ArmSpec, rounds: int, batch_size: int, seed: int) -> list[float]:
    """Task-1 validation accuracy after each of ``rounds`` full-participation FedAvg rounds."""
    setup = Setup(data=data, backbone=str(backbone), backbone_kind="tiny", arms={"arm": spec}, seed=seed,
                  batch_size=batch_size)
    model, names = setup.build_model("arm")
    task = data.tasks[0]
    state, curve = get_state(model, names[task.name]), []
    for r in range(1, rounds + 1):
        states, weights = [], []
        for client in range(len(task.partitions)):
            set_state(model, state)
            x, y = task.client_data(client)
            params = set_trainable(model, names[task.name])
            gen = torch.Generator().manual_seed(derive_seed("client", seed, "arm", task.name, r, client))
            train_epochs(model, task.name, x, y, params, spec.local_epochs, batch_size, spec.lr,
                         spec.weight_decay, gen, torch.device("cpu"))
            states.append(get_state(model, names[task.name]))
            weights.append(float(len(y)))
        state = fedavg(states, weights)
        set_state(model, state)
        curve.append((predict(model, task.name, task.x_val, torch.device("cpu")) == task.y_val)
                     .float().mean().item())
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/smoke.yaml")
    parser.add_argument("--replicate", type=int, default=0)
    parser.add_argument("--pretrain-epochs", type=int, nargs="+", default=[5])
    parser.add_argument("--trial", action="append", required=True, help="module:key=value,...")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--d-model", type=int, default=PretrainArgs.d_model, help="TinyViT width (scale probe)")
    parser.add_argument("--n-layers", type=int, default=PretrainArgs.n_layers)
    parser.add_argument("--source-samples", type=int, help="override data.source_samples (backbone probe)")
    parser.add_argument("--source-templates", type=int, help="override data.source_templates (backbone probe)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench = yaml.safe_load(open(args.config))["methods"]["fedyolo"]["benchmarks"]["federated_vision"]
    overrides = {"source_samples": args.source_samples, "source_templates": args.source_templates}
    data_cfg = dict(bench["data"], **{k: v for k, v in overrides.items() if v is not None})
    data_args = build_args(FederatedVisionArgs, data_cfg, "data")
    data = load(data_args, data_seed(0, "federated_vision", args.replicate))
    batch = int(bench["variants"]["suite"].get("batch_size", 32))
    trials = [parse_trial(t) for t in args.trial]
    with tempfile.TemporaryDirectory() as tmp:
        for epochs in args.pretrain_epochs:
            started = time.process_time()
            shape = PretrainArgs(epochs=epochs, d_model=args.d_model, n_layers=args.n_layers)
            backbone = pretrain(data, args.replicate, shape, Path(tmp) / f"e{epochs}",
                                lambda m: print(f"  {m}", flush=True))
            print(f"pretrain {epochs} epochs (d_model {args.d_model}, {args.n_layers} layers): "
                  f"{time.process_time() - started:.1f} CPU-s", flush=True)
            for name, values in trials:
                spec = build_args(ArmSpec, values, name)
                started = time.process_time()
                curve = fedavg_trial(data, backbone, spec, args.rounds, batch,
                                     run_seed(0, "federated_vision", "fedyolo", "suite", args.replicate))
                print(f"pretrain={epochs} {name}: val {' '.join(f'{v:.3f}' for v in curve)} | "
                      f"last {curve[-1]:.3f} best {max(curve):.3f} | {time.process_time() - started:.1f} CPU-s",
                      flush=True)


if __name__ == "__main__":
    main()
