"""The Flower ServerApp: FedAvg over modules, arm after arm, with seeded client sampling.

For each arm of the ``Setup`` (FedAvg of a module, local-only training, or a task sequence) the server
samples clients with its own seeded generator, sends them the current module, averages what comes back
weighted by example counts (McMahan et al., arXiv 1602.05629), evaluates the global model on the
benchmark's test set after each round, and counts the bits of every array it sends and receives.
Rows go to ``record(arm, metric, value, split=..., step=...)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp

from methods.core.seeding import derive_seed, numpy_rng
from methods.fedyolo.local import predict
from methods.fedyolo.modules import get_state, set_state
from methods.fedyolo.setup import Setup

Recorder = Callable[..., None]


@dataclass
class ServerConfig:
    rounds: int = 8  # rounds per task
    clients_per_round: int = 4
    target_accuracy: float = 0.7  # for rounds_to_target
    timeout_s: float = 3600.0


def partition_map(grid: Grid, expected: int, timeout_s: float = 120.0) -> dict[int, int]:
    """partition id -> node id, asked of the nodes themselves (``query`` messages), once ``expected``
    nodes have connected."""
    deadline = time.monotonic() + timeout_s
    while len(node_ids := sorted(grid.get_node_ids())) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(node_ids)} of {expected} client nodes connected "
                               f"in {timeout_s:.0f}s")
        time.sleep(0.2)
    replies = grid.send_and_receive([Message(RecordDict(), dst_node_id=n, message_type=MessageType.QUERY)
                                     for n in node_ids])
    mapping = {}
    for reply in replies:
        if reply.has_error():
            raise RuntimeError(f"node {reply.metadata.src_node_id} failed the query: {reply.error}")
        mapping[int(reply.content["config"]["partition-id"])] = reply.metadata.src_node_id
    return mapping


def order_by_partition(replies: list[Message], nodes: dict[int, int]) -> list[Message]:
    """Replies in partition-id order: the one order that depends only on the run's seed.

    Flower draws node ids at random in every run, so ordering by node id (or by arrival) changes the
    order of FedAvg's floating-point sum from run to run; for the full model that flipped ~25 of 338 k
    averaged weights by one ulp per round (measured), enough for full/LoRA training to diverge."""
    partition_of = {node: p for p, node in nodes.items()}
    unknown = [r.metadata.src_node_id for r in replies if r.metadata.src_node_id not in partition_of]
    if unknown:
        raise RuntimeError(f"replies from nodes with no known partition: {unknown[:3]}")
    return sorted(replies, key=lambda r: partition_of[r.metadata.src_node_id])


def fedavg(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """Example-weighted average of client states (all with the same keys)."""
    w = torch.tensor(weights, dtype=torch.float64)
    w = w / w.sum()
    return {k: sum(wi * s[k].double() for wi, s in zip(w, states, strict=True)).to(states[0][k].dtype)
            for k in states[0]}


class Federation:
    """Runs the arms of a setup on a Grid (the ServerApp's main)."""

    def __init__(self, setup: Setup, cfg: ServerConfig, record: Recorder, log: Callable[[str], None]) -> None:
        self.setup, self.cfg, self.record, self.log = setup, cfg, record, log
        self.device = torch.device(setup.device)

    def run(self, grid: Grid) -> None:
        self.setup.check_arms()
        self.trained: dict[str, tuple[dict[str, torch.Tensor], int, int]] = {}  # arm -> state, bits, rounds
        nodes = partition_map(grid, len(self.setup.data.tasks[0].partitions))
        if len(nodes) < self.cfg.clients_per_round:
            raise ValueError(f"{self.cfg.clients_per_round} clients per round but only {len(nodes)} nodes")
        for arm in self.setup.arm_order():
            spec = self.setup.arms[arm]
            self.log(f"arm {arm}: {spec.mode} {spec.module}, {spec.local_epochs} local epoch(s)")
            if spec.mode == "local":
                self.run_local(grid, nodes, arm)
            else:
                self.run_federated(grid, nodes, arm)

    def _train_messages(self, nodes: dict[int, int], partitions: list[int], arrays: ArrayRecord, arm: str,
                        task: str, round_index: int, evaluate: bool, epochs: int) -> list[Message]:
        spec = self.setup.arms[arm]
        out = []
        for p in partitions:
            config = ConfigRecord({"arm": arm, "task": task, "epochs": epochs, "lr": spec.lr,
                                   "weight-decay": spec.weight_decay, "evaluate": evaluate,
                                   "seed": derive_seed("client", self.setup.seed, arm, task, round_index, p)})
            out.append(Message(RecordDict({"arrays": arrays, "config": config}), dst_node_id=nodes[p],
                               message_type=MessageType.TRAIN))
        return out

    def _send(self, grid: Grid, nodes: dict[int, int], messages: list[Message]) -> tuple[list[Message], int]:
        """Send, receive (ordered by partition id, see ``order_by_partition``), and the bits moved both ways."""
        sent = sum(m.content["arrays"].count_bytes() for m in messages) * 8
        replies = order_by_partition(list(grid.send_and_receive(messages, timeout=self.cfg.timeout_s)), nodes)
        if len(replies) != len(messages):
            raise RuntimeError(f"{len(messages) - len(replies)} of {len(messages)} clients did not reply")
        for reply in replies:
            if reply.has_error():
                raise RuntimeError(f"client {reply.metadata.src_node_id} failed: {reply.error}")
        received = sum(r.content["arrays"].count_bytes() for r in replies) * 8
        return replies, sent + received

    def _evaluate(self, model, task_name: str, split: str = "test") -> dict[str, float]:
        from benchmarks.federated_vision import score

        task = self.setup.data.task(task_name)
        x, y = (task.x_val, task.y_val) if split == "val" else (task.x_test, task.y_test)
        if x is None:
            raise ValueError(f"task '{task_name}' has no validation split (set val_fraction > 0)")
        preds = predict(model, task_name, x, self.device, self.setup.eval_batch_size, self.setup.dtype)
        return score(preds, y, task.num_classes, task.client_label_dist if split == "test" else None)

    def run_federated(self, grid: Grid, nodes: dict[int, int], arm: str) -> None:
        """FedAvg of the arm's module, ``rounds`` rounds per task (the arm's own, else the suite's). Each
        round: validation accuracy of every task seen so far (step rows; the current task's decides
        ``rounds_to_target``). Test accuracy is read after each task and at the end, and never decides
        anything."""
        model, names = self.setup.build_model(arm)
        spec, cfg = self.setup.arms[arm], self.cfg
        rounds = spec.rounds or cfg.rounds
        tasks = self.setup.arm_tasks(arm)
        params = dict(model.named_parameters())
        n_params = sum(params[n].numel() for n in names[tasks[0]])
        self.record(arm, "communicated_parameters", n_params)
        bits_total, reached, global_round, first = 0, None, 0, 0
        after_own: dict[str, float] = {}
        if spec.start_from:  # task 1 was learned by that arm: continue from its trained model
            state, bits_total, global_round = self.trained[spec.start_from]
            set_state(model, state)
            after_own[tasks[0]] = self._evaluate(model, tasks[0])["accuracy"]
            first = 1
            self.log(f"{arm}: task {tasks[0]} from arm {spec.start_from} ({after_own[tasks[0]]:.3f} test accuracy)")
        for t in range(first, len(tasks)):
            task = tasks[t]
            # the same client draws for every arm on a task, whichever arm it continues from
            sampler = numpy_rng(derive_seed("sampling", self.setup.seed, t))
            state = get_state(model, names[task])
            for r in range(1, rounds + 1):
                global_round += 1
                chosen = sorted(sampler.choice(len(nodes), cfg.clients_per_round, replace=False).tolist())
                arrays = ArrayRecord(torch_state_dict={k: v.cpu() for k, v in state.items()})
                replies, bits = self._send(grid, nodes, self._train_messages(nodes, chosen, arrays, arm, task,
                                                                      global_round, False, spec.local_epochs))
                state = fedavg([rep.content["arrays"].to_torch_state_dict() for rep in replies],
                               [float(rep.content["metrics"]["num-examples"]) for rep in replies])
                set_state(model, state)
                bits_total += bits
                self.record(arm, "bits_per_round", bits, step=global_round)
                for i, seen in enumerate(tasks[:t + 1]):  # validation only: test data is read once per task
                    val = self._evaluate(model, seen, "val")["accuracy"]
                    self.record(arm, "accuracy", val, split="val" if len(tasks) == 1 else f"task{i + 1}_val",
                                step=global_round)
                if t == 0 and reached is None and val >= cfg.target_accuracy:
                    reached = r
                self.log(f"{arm} {task} round {r}/{rounds}: validation accuracy {val:.3f}, "
                         f"{bits / 8e3:.1f} kB moved")
                if spec.stop_at_target and reached is not None:
                    break
            after_own[task] = self._evaluate(model, task)["accuracy"]
        self.trained[arm] = (get_state(model, names[tasks[0]]), bits_total, global_round)
        self.record(arm, "bits_total", bits_total)
        self.record(arm, "bits_per_round", bits_total / global_round)
        final = {task: self._evaluate(model, task) for task in tasks}
        if len(tasks) == 1:
            self.record(arm, "rounds_to_target", reached if reached is not None else rounds + 1)
            split = "at_target" if spec.stop_at_target else "test"
            self.record(arm, "accuracy", final[tasks[0]]["accuracy"], split=split)
            self.record(arm, "client_accuracy", final[tasks[0]]["client_accuracy"], split=split)
            return
        for i, task in enumerate(tasks, 1):  # accuracy on each task right after learning it, and at the end
            self.record(arm, "accuracy", after_own[task], split=f"task{i}_learned")
            self.record(arm, "accuracy", final[task]["accuracy"], split=f"task{i}_final")
        forgetting = np.mean([after_own[task] - final[task]["accuracy"] for task in tasks[:-1]])
        self.record(arm, "forgetting", float(forgetting))
        self.record(arm, "accuracy", float(np.mean([final[t]["accuracy"] for t in tasks])))

    def run_local(self, grid: Grid, nodes: dict[int, int], arm: str) -> None:
        """Every client trains its own copy of the module on its own data, never communicating it."""
        model, names = self.setup.build_model(arm)
        task = self.setup.arm_tasks(arm)[0]
        arrays = ArrayRecord(torch_state_dict={k: v.cpu() for k, v in get_state(model, names[task]).items()})
        partitions = sorted(nodes)
        replies, bits = self._send(grid, nodes, self._train_messages(nodes, partitions, arrays, arm, task, 0, True,
                                                              self.setup.arms[arm].local_epochs))
        weights = np.array([float(r.content["metrics"]["num-examples"]) for r in replies])
        for metric in ("accuracy", "client_accuracy"):
            values = np.array([float(r.content["metrics"][metric]) for r in replies])
            self.record(arm, metric, float(values.mean()))
        self.record(arm, "bits_total", 0.0)  # the initial module is the same for all: nothing is exchanged
        self.log(f"{arm}: local-only over {len(partitions)} clients ({weights.sum():.0f} examples), "
                 f"{bits / 8e3:.1f} kB of initial module sent (same as loading the model)")


def make_server_app(federation: Federation) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        federation.run(grid)

    return app
