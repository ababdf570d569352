"""Timing benchmark (not a test): one CSFT epoch at the official setting and one MTS-GRPO step.

    OMP_NUM_THREADS=1 python -m methods.cot2.speed [--epochs 3] [--grpo-steps 20]
    python -m methods.cot2.speed --device cuda --epochs 3                       # official size on a GPU
    python -m methods.cot2.speed --device cuda --layers 4 --heads 4 --d-model 32  # the paper's graph-task size

CSFT epoch: 2 layers, 2 heads, d=24, batch 16, lr 1e-4, the full MNNS training split (4 digits 1-9,
multiset split) and its validation pass (continuous decoding of the held-out split), one torch thread:
the setting of the official ``scripts/continuous_evaluation.sh``, whose epoch takes ~11 s on the
2-core dev machine (issue 6). MTS-GRPO step: 16 prompts x 8 rollouts, K = 3 (official defaults).
Prints wall and CPU seconds; on a shared machine CPU seconds are the fairer number, and the load
average printed alongside says how contended the wall time was. ``--device cuda`` runs the same code
path on the GPU (data, model, optimiser, sampling generator there) and synchronises the device before
every clock read, so the times cover the finished kernels, not their launch; on a GPU, wall time is the
number to read (CPU time there is the host's launching and waiting).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from benchmarks.mnns import MNNSArgs, load
from methods.cot2.decode import rollout
from methods.cot2.grpo import GRPOSettings, train_grpo
from methods.cot2.model import build_gpt2
from methods.cot2.sft import train_epochs

OFFICIAL_EPOCH_SECONDS = 11.0  # official CSFT epoch on this machine, one thread (issue 6)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn``, the device's queue drained before both clock reads."""
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--grpo-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--autograd", action="store_true", help="time the autograd step instead of the fused one")
    parser.add_argument("--compile", action="store_true", help="torch.compile the fused step (compiled once, "
                        "in the warm-up epoch, which is not timed)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--d-model", type=int, default=24, help="embedding dim (official MNNS 24; paper graphs 32)")
    parser.add_argument("--layers", type=int, default=2, help="layers (official MNNS 2; paper graphs 4)")
    parser.add_argument("--heads", type=int, default=2, help="heads (official MNNS 2; paper graphs 4)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch sees no GPU")
    torch.set_num_threads(args.threads)
    data = load(MNNSArgs(), 0)
    train, test = data["train"].to(device), data["test"].to(device)
    torch.manual_seed(0)
    model = build_gpt2(train.vocab_size, train.prompt.shape[1] + train.num_steps, args.d_model, args.layers,
                       args.heads).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    size = f"{args.layers}L {args.heads}H d={args.d_model}"

    def validation_part() -> None:
        rollout(model, test.prompt, test.num_steps, "continuous")

    # One train_epochs call for all epochs (one optimiser, one compiled step); epoch 1 is the warm-up
    # (allocator, first-call dispatch, compilation) and is not timed. Each epoch's train part runs from
    # the previous epoch's end to this callback; the validation pass is timed inside it.
    marks: list[tuple[float, float]] = []
    times: list[tuple[tuple[float, float], tuple[float, float]]] = []

    def on_epoch(epoch: int, loss: float) -> None:
        _sync(device)
        now = (time.perf_counter(), time.process_time())
        if epoch > 1:
            times.append(((now[0] - marks[-1][0], now[1] - marks[-1][1]), _timed(validation_part, device)))
        marks.append((time.perf_counter(), time.process_time()))

    train_epochs(model, "csft", train, epochs=args.epochs + 1, batch_size=16, lr=1e-4, weight_decay=0.01,
                 generator=gen, on_epoch=on_epoch, use_fused=not args.autograd, compile_step=args.compile)
    wall = statistics.median(t[0][0] + t[1][0] for t in times)
    cpu = statistics.median(t[0][1] + t[1][1] for t in times)
    train_cpu = statistics.median(t[0][1] for t in times)
    val_cpu = statistics.median(t[1][1] for t in times)
    load1 = os.getloadavg()[0]
    path = "autograd" if args.autograd else "compiled fused" if args.compile else "fused"
    ratio = ""  # the official ~11 s is its 2L 2H d=24 epoch on this machine's CPU, one thread
    if (args.layers, args.heads, args.d_model) == (2, 2, 24):
        ratio = (f"official ~{OFFICIAL_EPOCH_SECONDS:.0f} s (CPU, 1 thread) -> "
                 f"{OFFICIAL_EPOCH_SECONDS / wall:.1f}x by wall, {OFFICIAL_EPOCH_SECONDS / cpu:.1f}x by CPU; ")
    where = "" if device.type == "cpu" else f", {device} ({torch.cuda.get_device_name(device)})"
    print(f"CSFT epoch ({len(train)} train + {len(test)} validation examples, batch 16, {size}, "
          f"{torch.get_num_threads()} thread{where}, {path} step): wall {wall:.3f} s, CPU {cpu:.3f} s "
          f"(train {train_cpu:.3f} + validation {val_cpu:.3f}; median of {args.epochs}); "
          f"{ratio}load average {load1:.2f} on {os.cpu_count()} cores")
    settings = GRPOSettings(sampling="mts", k=3, steps=1, prompts_per_step=16, rollouts=8, lr=5e-6)
    train_grpo(model, train, settings, gen)  # warm-up
    settings.steps = args.grpo_steps
    g_wall, g_cpu = _timed(lambda: train_grpo(model, train, settings, gen), device)
    print(f"MTS-GRPO step (16 prompts x 8 rollouts, K=3, {size}{where}): "
          f"wall {1000 * g_wall / args.grpo_steps:.1f} ms, "
          f"CPU {1000 * g_cpu / args.grpo_steps:.1f} ms (mean of {args.grpo_steps}); "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
