"""FedYolo: data partitions, loaders on local files, modules, and the Flower apps' federated loop.

The loop is exercised in-process (a Grid that hands each message to the ClientApp directly), so the
tests need no Ray; the Ray simulation itself runs in the smoke DAG.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.federated_vision import (
    FederatedData,
    FederatedVisionArgs,
    TaskData,
    build,
    dirichlet_partitions,
    read_cifar,
    score,
)
from methods.fedyolo.local import predict, train_epochs
from methods.fedyolo.modules import MODULE_KINDS, ModuleSpec, attach, get_state, set_state, set_trainable
from methods.fedyolo.vit import TinyViTConfig, load_hf_vit, load_tiny_vit, save_tiny_vit, tiny_vit_classifier

SMOKE_VIT = TinyViTConfig(d_model=96, n_layers=3, n_heads=4, patch=8, length=40)
TINY_VIT = TinyViTConfig(d_model=16, n_layers=2, n_heads=2, patch=8, length=16)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_dirichlet_partitions_are_disjoint_cover_and_repeat_with_the_seed():
    labels = np.repeat(np.arange(5), 40)
    parts = dirichlet_partitions(labels, 6, 0.5, 5, seed=3)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(labels)))
    again = dirichlet_partitions(labels, 6, 0.5, 5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = dirichlet_partitions(labels, 6, 0.5, 5, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_small_alpha_gives_more_skewed_clients_than_large_alpha():
    labels = np.repeat(np.arange(5), 100)

    def skew(alpha: float) -> float:
        parts = dirichlet_partitions(labels, 5, alpha, 5, seed=0)
        return float(np.mean([np.bincount(labels[p], minlength=5).max() / len(p) for p in parts]))

    assert skew(0.1) > skew(100.0) + 0.2


def test_score_weights_per_class_accuracy_by_each_clients_label_mix():
    labels = torch.tensor([0, 0, 1, 1])
    preds = torch.tensor([0, 0, 0, 0])  # class 0 always right, class 1 always wrong
    dist = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    out = score(preds, labels, 2, dist)
    assert out["accuracy"] == 0.5
    assert out["client_accuracy"] == pytest.approx((1.0 + 0.0 + 0.5) / 3)


def _write_cifar(root: Path) -> None:
    rng = np.random.default_rng(0)
    c10 = root / "cifar-10-batches-py"
    c10.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(c10 / name, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                         b"labels": [0, 1, 2, 9]}, fh)
    c100 = root / "cifar-100-python"
    c100.mkdir()
    for name, n in (("train", 30), ("test", 10)):
        with open(c100 / name, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"fine_labels": list(range(n)), b"coarse_labels": [0] * n}, fh)


def test_cifar_pickles_load_as_images_and_partition_into_clients(tmp_path):
    _write_cifar(tmp_path)
    c10 = read_cifar(tmp_path, "cifar10")
    assert c10.x_train.shape == (20, 3, 32, 32) and c10.x_test.shape == (4, 3, 32, 32)
    assert c10.num_classes == 10 and float(c10.x_train.max()) <= 1.0
    data = build(FederatedVisionArgs(dataset="cifar", tasks=["cifar100", "cifar10"], data_dir=str(tmp_path),
                                     num_clients=2, min_partition_size=1, dirichlet_alpha=5.0), seed=0)
    assert [t.name for t in data.tasks] == ["cifar100", "cifar10"] and data.source is None
    assert data.tasks[0].num_classes == 100 and sum(len(p) for p in data.tasks[0].partitions) == 30


def test_missing_cifar_folder_names_the_folder_to_extract(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        read_cifar(tmp_path, "cifar100")


@pytest.mark.parametrize("kind", [k for k in MODULE_KINDS if k != "full"])
def test_every_module_sends_over_100x_fewer_parameters_than_the_full_model(kind):
    model = tiny_vit_classifier(SMOKE_VIT)
    names = attach(model, "t", 5, ModuleSpec(kind), gen())
    full = sum(p.numel() for n, p in model.encoder.named_parameters() if "lora_" not in n) + 5 * 96 + 5
    sent = sum(p.numel() for n, p in model.named_parameters() if n in names)
    assert full / sent >= 100


@pytest.mark.parametrize("rank, targets", [(2, ("q_proj", "v_proj")), (1, ("q_proj", "k_proj", "v_proj", "o_proj"))])
def test_lora_adapts_exactly_the_named_layers_and_stays_100x_smaller(rank, targets):
    model = tiny_vit_classifier(SMOKE_VIT)
    names = attach(model, "t", 5, ModuleSpec("lora", lora_rank=rank, lora_targets=targets), gen())
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names if "lora_" in n}
    assert adapted == set(targets)
    full = sum(p.numel() for n, p in model.encoder.named_parameters() if "lora_" not in n) + 5 * 96 + 5
    sent = sum(p.numel() for n, p in model.named_parameters() if n in names)
    assert full / sent >= 100
    with pytest.raises(ValueError, match="lora_targets"):
        ModuleSpec("lora", lora_targets=())


@pytest.mark.parametrize("kind", ["lora", "adapter"])
def test_lora_and_adapters_start_as_the_pretrained_function(kind):
    torch.manual_seed(0)
    model = tiny_vit_classifier(TINY_VIT)
    x = torch.randn(3, 1, 16)
    before = model.features(x)
    attach(model, "t", 3, ModuleSpec(kind), gen())
    model.active_task = "t"
    assert torch.allclose(model.features(x), before, atol=1e-6)


def test_training_a_module_changes_only_its_parameters():
    model = tiny_vit_classifier(TINY_VIT)
    names = attach(model, "t", 3, ModuleSpec("prompt"), gen())
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if n not in names}
    start = get_state(model, names)
    params = set_trainable(model, names)
    opt = torch.optim.SGD(params, lr=0.1)
    loss = model(torch.randn(4, 1, 16), "t").sum()
    loss.backward()
    opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    trained = get_state(model, names)
    assert set(trained) == set(names) and any(not torch.equal(trained[n], start[n]) for n in names)


def test_local_training_runs_in_the_jobs_precision_and_float32_is_unchanged():
    """The config's dtype reaches the client's forward pass (bf16 autocast); float32 is the plain path."""
    x, y = torch.randn(24, 1, 16), torch.randint(0, 3, (24,))
    results = {}
    for dtype in (None, torch.float32, torch.bfloat16):
        torch.manual_seed(0)
        model = tiny_vit_classifier(TINY_VIT)
        names = attach(model, "t", 3, ModuleSpec("lora"), gen())
        params = set_trainable(model, names)
        kwargs = {} if dtype is None else {"dtype": dtype}
        seen = []
        hook = model.blocks[0].attn.q_proj.register_forward_hook(lambda m, i, out, seen=seen: seen.append(out.dtype))
        loss = train_epochs(model, "t", x, y, params, 1, 8, 1e-2, 0.0, gen(), torch.device("cpu"), **kwargs)
        preds = predict(model, "t", x, torch.device("cpu"), **kwargs)
        hook.remove()
        assert set(seen) == {dtype or torch.float32} and np.isfinite(loss) and preds.shape == (24,)
        results[dtype] = (loss, get_state(model, names))
    assert results[None][0] == results[torch.float32][0]
    assert all(torch.equal(results[None][1][n], results[torch.float32][1][n]) for n in results[None][1])


def test_per_task_modules_leave_earlier_tasks_untouched_while_full_updates_do_not():
    x = torch.randn(8, 1, 16)
    for kind, should_keep in (("adapter", True), ("full", False)):
        model = tiny_vit_classifier(TINY_VIT)
        names_a = attach(model, "a", 3, ModuleSpec(kind), gen())
        names_b = attach(model, "b", 3, ModuleSpec(kind), gen(1))
        set_trainable(model, names_a)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in names_a:
                    p.add_(0.1)
        before = model(x, "a")
        params = set_trainable(model, names_b)
        opt = torch.optim.SGD(params, lr=0.5)
        model(x, "b").pow(2).sum().backward()
        opt.step()
        assert torch.allclose(model(x, "a"), before) == should_keep


def test_tiny_vit_checkpoint_round_trips_through_a_file(tmp_path):
    model = tiny_vit_classifier(TINY_VIT)
    save_tiny_vit(model, tmp_path / "m.pt")
    loaded = load_tiny_vit(tmp_path / "m.pt")
    x = torch.randn(2, 1, 16)
    assert torch.allclose(loaded.features(x), model.features(x))


def test_transformers_vit_loads_by_path_and_takes_every_module_kind(tmp_path):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                       image_size=32, patch_size=8)
    ViTModel(config, add_pooling_layer=False).save_pretrained(tmp_path / "vit")
    images = torch.rand(2, 3, 24, 24)  # resized to the checkpoint's 32
    for kind in MODULE_KINDS:
        model = load_hf_vit(str(tmp_path / "vit"))
        names = attach(model, "cifar", 10, ModuleSpec(kind), gen())
        set_trainable(model, names)
        model.active_task = "cifar"
        logits = model(images, "cifar")
        assert logits.shape == (2, 10)
        logits.sum().backward()
        assert all(p.grad is not None for n, p in model.named_parameters() if n in names and "head" not in n)


def test_set_state_loads_a_sent_module_into_another_copy():
    a, b = tiny_vit_classifier(TINY_VIT), tiny_vit_classifier(TINY_VIT)
    b.load_state_dict(a.state_dict())
    names_a = attach(a, "t", 3, ModuleSpec("lora"), gen(0))
    attach(b, "t", 3, ModuleSpec("lora"), gen(5))
    x = torch.randn(2, 1, 16)
    with torch.no_grad():
        for n, p in a.named_parameters():
            if "lora_B" in n:
                p.normal_()
    set_state(b, get_state(a, names_a))
    assert torch.allclose(a(x, "t"), b(x, "t"))


def test_fedavg_weights_clients_by_their_example_counts():
    from methods.fedyolo.server_app import fedavg

    out = fedavg([{"w": torch.tensor([0.0])}, {"w": torch.tensor([3.0])}], [1.0, 2.0])
    assert out["w"].item() == pytest.approx(2.0)


# --- the Flower apps, in process -------------------------------------------------------------------

class InProcessGrid:
    """A Grid stand-in that delivers each message to the ClientApp of its node (no Ray)."""

    def __init__(self, client_app, num_nodes: int) -> None:
        self.app = client_app
        self.nodes = {1000 + i: i for i in range(num_nodes)}  # node id -> partition id

    def get_node_ids(self):
        return list(self.nodes)

    def send_and_receive(self, messages, timeout=None):
        from flwr.app import Context, RecordDict

        replies = []
        for message in messages:
            node = message.metadata.dst_node_id
            ctx = Context(run_id=1, node_id=node, node_config={"partition-id": self.nodes[node]},
                          state=RecordDict(), run_config={})
            reply = self.app(message, ctx)
            replies.append(reply)
        return replies


def _tiny_setup(tmp_path: Path, arms: dict):
    from methods.fedyolo.setup import ArmSpec, Setup

    rng = np.random.default_rng(0)

    def task(name: str) -> TaskData:
        x = torch.from_numpy(rng.normal(size=(60, 1, 16)).astype(np.float32))
        y = torch.from_numpy((x[:, 0, :8].sum(-1) > 0).numpy().astype(np.int64))
        t = TaskData(name, 2, x[:40], y[:40], x[40:50], y[40:50], x_val=x[50:], y_val=y[50:])
        t.partitions = [np.arange(0, 20), np.arange(20, 30), np.arange(30, 40)]
        counts = np.stack([np.bincount(t.y_train.numpy()[p], minlength=2) for p in t.partitions])
        t.client_label_dist = counts / counts.sum(1, keepdims=True)
        return t

    torch.manual_seed(0)
    save_tiny_vit(tiny_vit_classifier(TINY_VIT), tmp_path / "vit.pt")
    data = FederatedData(tasks=[task("a"), task("b")])
    return Setup(data=data, backbone=str(tmp_path / "vit.pt"), backbone_kind="tiny",
                 arms={k: ArmSpec(**v) for k, v in arms.items()}, seed=7, batch_size=8)


def _run_federation(tmp_path: Path, arms: dict, target: float = 0.0) -> list[tuple]:
    from flwr.supercore.task_identity import TaskIdentity

    from methods.fedyolo.client_app import make_client_app
    from methods.fedyolo.server_app import Federation, ServerConfig

    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
    setup = _tiny_setup(tmp_path, arms)
    rows: list[tuple] = []
    federation = Federation(setup, ServerConfig(rounds=2, clients_per_round=2, target_accuracy=target),
                            lambda arm, metric, value, split="test", step=None:
                            rows.append((arm, metric, split, step, value)), log=lambda _m: None)
    federation.run(InProcessGrid(make_client_app(setup), 3))
    return rows


def test_flower_apps_run_every_arm_kind_and_repeat_exactly(tmp_path):
    arms = {"full": {"module": "full", "lr": 1e-2}, "lora": {"module": "lora"},
            "local_head": {"module": "head", "mode": "local", "local_epochs": 2},
            "multi": {"module": "adapter", "mode": "multitask"}}
    rows = _run_federation(tmp_path, arms)
    assert rows == _run_federation(tmp_path, arms)
    final = {(arm, metric, split): value for arm, metric, split, step, value in rows if step is None}
    assert final[("full", "bits_total", "test")] / final[("lora", "bits_total", "test")] > 10
    assert final[("multi", "forgetting", "test")] == 0.0  # the frozen backbone keeps task a's module exact
    assert final[("local_head", "bits_total", "test")] == 0.0
    assert final[("full", "rounds_to_target", "test")] == 1.0  # target 0: reached in the first round
    curve = [step for arm, metric, split, step, _ in rows if arm == "multi" and split == "task1_val"]
    assert curve == [1.0, 2.0, 3.0, 4.0]  # task 1 is tracked through task 2's rounds
    assert not [r for r in rows if r[3] is not None and r[1] == "accuracy" and "val" not in r[2]]  # curves: val


def test_a_sequence_continues_from_the_named_arm_and_only_full_updates_can_forget(tmp_path):
    arms = {"seq_full": {"module": "full", "mode": "multitask", "lr": 5e-2, "start_from": "full"},
            "full": {"module": "full", "lr": 5e-2}, "adapter": {"module": "adapter", "lr": 5e-2},
            "seq_adapter": {"module": "adapter", "mode": "multitask", "lr": 5e-2, "start_from": "adapter"}}
    rows = _run_federation(tmp_path, arms)
    final = {(arm, metric, split): value for arm, metric, split, step, value in rows if step is None}
    for seq, single in (("seq_full", "full"), ("seq_adapter", "adapter")):
        assert final[(seq, "accuracy", "task1_learned")] == final[(single, "accuracy", "test")]
        # the sequence's bits include the task-1 rounds it reused: twice the single arm's
        assert final[(seq, "bits_total", "test")] == pytest.approx(2 * final[(single, "bits_total", "test")],
                                                                   rel=0.01)
    assert final[("seq_adapter", "forgetting", "test")] == 0.0
    steps = sorted({step for arm, metric, split, step, _ in rows if arm == "seq_full" and step is not None})
    assert steps == [3.0, 4.0]  # only task 2's rounds are run again


def test_an_arm_can_train_its_later_tasks_for_its_own_number_of_rounds(tmp_path):
    arms = {"full": {"module": "full", "lr": 5e-2},
            "seq_full": {"module": "full", "mode": "multitask", "lr": 5e-2, "start_from": "full", "rounds": 3}}
    rows = _run_federation(tmp_path, arms, target=2.0)  # suite rounds: 2; the target is never reached
    steps = sorted({step for arm, metric, split, step, _ in rows if arm == "seq_full" and step is not None})
    assert steps == [3.0, 4.0, 5.0]  # task 2: the arm's 3 rounds, after the 2 it inherited
    final = {(arm, metric): value for arm, metric, split, step, value in rows if step is None and split == "test"}
    assert final[("full", "rounds_to_target")] == 3.0  # never reached: the suite's rounds + 1


def test_an_arm_that_stops_at_the_target_files_its_accuracy_apart(tmp_path):
    rows = _run_federation(tmp_path, {"fast": {"module": "head", "stop_at_target": True}}, target=0.0)
    final = {(metric, split): value for _arm, metric, split, step, value in rows if step is None}
    assert final[("rounds_to_target", "test")] == 1.0
    assert ("accuracy", "at_target") in final and ("accuracy", "test") not in final
    assert len([r for r in rows if r[1] == "bits_per_round" and r[3] is not None]) == 1  # stopped after 1


@pytest.mark.parametrize("arms, match", [
    ({"seq": {"module": "full", "mode": "multitask", "start_from": "fulll"},
      "full": {"module": "full"}}, "must be a federated arm"),
    ({"full": {"module": "full"}, "seq": {"module": "adapter", "mode": "multitask", "start_from": "full"}},
     "trains another module"),
])
def test_start_from_must_name_a_federated_arm_with_the_same_module(tmp_path, arms, match):
    with pytest.raises(ValueError, match=match):
        _run_federation(tmp_path, arms)


def test_arm_options_for_other_modes_are_refused():
    from methods.fedyolo.setup import ArmSpec

    with pytest.raises(ValueError, match="multitask arms only"):
        ArmSpec(module="full", start_from="x")
    with pytest.raises(ValueError, match="federated arms only"):
        ArmSpec(module="head", mode="local", stop_at_target=True)
    with pytest.raises(ValueError, match="never communicates"):
        ArmSpec(module="head", mode="local", rounds=3)
    with pytest.raises(ValueError, match=">= 0"):
        ArmSpec(module="head", rounds=-1)


def test_validation_split_is_stratified_and_disjoint_from_training():
    from benchmarks.federated_vision import split_validation

    y = torch.arange(100) % 4
    task = TaskData("t", 4, torch.arange(100).float().view(100, 1, 1), y, y[:1].float(), y[:1])
    split_validation(task, 0.2, np.random.default_rng(0))
    assert len(task.y_val) == 20 and len(task.y_train) == 80
    assert torch.bincount(task.y_val, minlength=4).tolist() == [5, 5, 5, 5]
    seen = set(task.x_train.flatten().tolist()) | set(task.x_val.flatten().tolist())
    assert len(seen) == 100  # every example in exactly one of the two
    with pytest.raises(ValueError, match="val_fraction"):
        split_validation(task, 1.0, np.random.default_rng(0))


def test_permuted_task_holds_task_ones_examples_with_scrambled_time_and_relabelled_classes(tmp_path,
                                                                                        monkeypatch):
    import benchmarks.federated_vision as fv

    rng = np.random.default_rng(0)
    raw = {"x": rng.normal(size=(200, 40)), "y": np.repeat(np.arange(10), 20),
           "x_test": rng.normal(size=(50, 40)), "y_test": np.repeat(np.arange(10), 5)}
    monkeypatch.setattr(fv, "generate_mnist1d", lambda n, seed: raw)
    _, (upper, permuted) = fv.mnist1d_tasks(FederatedVisionArgs(tasks=["upper", "upper_permuted"]), seed=3)
    a, b = upper.x_train[:, 0], permuted.x_train[:, 0]
    assert torch.equal(a.sort(-1).values, b.sort(-1).values)  # the same values per example...
    assert not torch.equal(a, b)  # ...in another order
    order = [int((b[0] == v).nonzero()) for v in a[0]]  # one fixed time permutation for every example
    assert torch.equal(b[:, order], a)
    mapping = {(int(u), int(p)) for u, p in zip(upper.y_train, permuted.y_train, strict=True)}
    assert len(mapping) == 5 and len({u for u, _ in mapping}) == 5  # a relabelling of the same classes


def test_source_samples_pretrain_on_a_larger_set_of_their_own_and_leave_the_tasks_alone(monkeypatch):
    import benchmarks.federated_vision as fv

    def fake(n, seed):  # n examples (and n // 2 test ones) drawn from the seed
        rng, y = np.random.default_rng(seed), np.arange(n) % 10
        return {"x": rng.normal(size=(n, 40)), "y": y, "x_test": rng.normal(size=(n // 2, 40)), "y_test": y[: n // 2]}

    monkeypatch.setattr(fv, "generate_mnist1d", fake)
    small_src, small_tasks = fv.mnist1d_tasks(FederatedVisionArgs(num_samples=200, tasks=["upper", "lower"]), 3)
    big_src, big_tasks = fv.mnist1d_tasks(FederatedVisionArgs(num_samples=200, source_samples=1000,
                                                              tasks=["upper", "lower"]), 3)
    assert len(small_src.y_train) == 100 and len(big_src.y_train) == 500  # digits 0-4 of each set
    assert set(big_src.y_train.tolist()) == set(range(5))
    assert not torch.equal(big_src.x_train[:100], small_src.x_train)  # examples of its own
    for a, b in zip(small_tasks, big_tasks, strict=True):  # the federated tasks do not change
        assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)


def test_tuning_probe_parses_trials_and_scores_validation_only_repeatably(tmp_path):
    from methods.fedyolo.setup import ArmSpec
    from methods.fedyolo.tune import fedavg_trial, parse_trial

    name, values = parse_trial("lora:lr=1e-2,lora_rank=2,lora_alpha=16,lora_targets=q_proj+k_proj")
    assert values == {"module": "lora", "lr": 0.01, "lora_rank": 2, "lora_alpha": 16,
                      "lora_targets": ["q_proj", "k_proj"]}
    setup = _tiny_setup(tmp_path, {"x": {"module": "head"}})
    task = setup.data.tasks[0]
    task.x_test = task.y_test = None  # the probe must never need test data
    spec = ArmSpec(module="lora", lr=1e-2, lora_rank=2, lora_alpha=16.0)
    curve = fedavg_trial(setup.data, Path(setup.backbone), spec, rounds=2, batch_size=8, seed=1)
    assert len(curve) == 2 and all(0.0 <= v <= 1.0 for v in curve)
    assert curve == fedavg_trial(setup.data, Path(setup.backbone), spec, rounds=2, batch_size=8, seed=1)


def test_random_templates_are_seeded_mnist1d_style_shapes_none_of_them_a_digit():
    from mnist1d.data import get_templates

    import benchmarks.federated_vision as fv

    t = fv.random_templates(30, seed=4)
    assert t["x"].shape == (30, 12) and t["y"].tolist() == list(range(30))
    assert np.allclose(t["x"][:, 0], 0)  # shifted to start at 0, as mnist1d's digits
    assert np.allclose((t["x"] * 6).std(1), 1)  # whitened, then scaled by 1/6
    assert np.array_equal(t["x"], fv.random_templates(30, seed=4)["x"])
    assert not np.array_equal(t["x"], fv.random_templates(30, seed=5)["x"])
    digits = get_templates()["x"]
    assert np.abs(t["x"][:, None] - digits[None]).max(-1).min() > 0.05  # no template is a digit


def test_source_templates_pretrain_on_classes_of_their_own_and_leave_the_tasks_alone(monkeypatch):
    import benchmarks.federated_vision as fv

    calls = []

    def fake(n, seed, templates=0):  # n examples (and n // 2 test ones) of 10 digits or of `templates` classes
        calls.append((n, templates))
        rng, y = np.random.default_rng(seed), np.arange(n) % (templates or 10)
        return {"x": rng.normal(size=(n, 40)), "y": y, "x_test": rng.normal(size=(n // 2, 40)), "y_test": y[: n // 2]}

    monkeypatch.setattr(fv, "generate_mnist1d", fake)
    _, digit_tasks = fv.mnist1d_tasks(FederatedVisionArgs(num_samples=200, tasks=["upper", "upper_permuted"]), 3)
    src, tasks = fv.mnist1d_tasks(FederatedVisionArgs(num_samples=200, source_templates=8,
                                                      tasks=["upper", "upper_permuted"]), 3)
    assert calls[-1] == (200, 8) and src.num_classes == 8 and set(src.y_train.tolist()) == set(range(8))
    assert len(src.y_train) == 200  # every example of the template set: none is held out for a task
    for a, b in zip(digit_tasks, tasks, strict=True):
        assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    with pytest.raises(ValueError, match="source_templates"):
        fv.mnist1d_tasks(FederatedVisionArgs(num_samples=200, source_templates=1), 3)


def test_mnist1d_generates_template_classes_through_its_own_transforms(tmp_path, monkeypatch):
    import benchmarks.federated_vision as fv

    monkeypatch.setattr(fv, "CACHE_ROOT", str(tmp_path))
    raw = fv.generate_mnist1d(120, seed=2, templates=6)
    assert raw["x"].shape == (96, 40) and set(raw["y"].tolist()) == set(range(6))
    again = fv.generate_mnist1d(120, seed=2, templates=6)  # from the cache
    assert np.array_equal(raw["x"], again["x"])
    assert not np.array_equal(fv.generate_mnist1d(120, seed=2)["x"], raw["x"])  # digits are cached apart
