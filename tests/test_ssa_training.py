"""SSA's training loop: the temperatures get their own learning rate without weight decay (as the released
code gives ``beta`` its own), the attention baseline trains exactly as in the shared loop, and the
steps-to-target metric reads a validation curve correctly."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from methods.core.training import TrainConfig, train
from methods.nn import LMConfig, TinyLM
from methods.ssa.training import make_optimizer, split_parameters, steps_to_target, train_with_temperatures


def tiny_lm(mixer: str) -> TinyLM:
    torch.manual_seed(0)
    return TinyLM(LMConfig(vocab_size=11, d_model=16, n_layers=2, n_heads=2, mixer=mixer,
                           mixer_args={"rope": True}))


def test_position_scope_gives_only_beta_its_own_group_without_weight_decay() -> None:
    model = tiny_lm("ssa")
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.1, temperature_lr=1e-2, scope="position")
    weights, own = opt.param_groups
    assert own["lr"] == 1e-2 and own["weight_decay"] == 0.0 and weights["weight_decay"] == 0.1
    assert [p.numel() for p in own["params"]] == [1, 1]  # one beta per layer
    _, every = split_parameters(model, scope="all")
    assert sum(p.numel() for p in every) == 2 * (2 * 16 + 1)


def test_attention_has_no_temperature_group_and_bad_scope_is_refused() -> None:
    assert split_parameters(tiny_lm("attention"))[1] == []
    assert len(make_optimizer(tiny_lm("attention"), 1e-3, 0.1, 1e-2).param_groups) == 1
    with pytest.raises(ValueError, match="scope"):
        split_parameters(tiny_lm("ssa"), scope="query")


def test_attention_baseline_trains_step_for_step_like_the_shared_loop() -> None:
    data = torch.randint(0, 11, (32, 9))

    def fit(use_shared_loop: bool) -> torch.Tensor:
        model = tiny_lm("attention")

        def loss_on(idx: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(model(data[idx, :-1]).flatten(0, 1), data[idx, 1:].flatten())

        cfg = TrainConfig(steps=6, batch_size=4, lr=3e-3, log_every=3)
        gen, cpu = torch.Generator().manual_seed(1), torch.device("cpu")
        if use_shared_loop:
            train(model, cfg, loss_on, 32, gen, cpu, torch.float32, log=lambda _: None)
        else:
            train_with_temperatures(model, cfg, 1e-2, "position", loss_on, 32, gen, cpu, torch.float32,
                                    log=lambda _: None)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(fit(True), fit(False))


def test_temperature_lr_moves_beta_faster_than_the_weights_lr_would() -> None:
    data = torch.randint(0, 11, (32, 9))
    betas = []
    for temperature_lr in (1e-4, 1e-1):
        model = tiny_lm("ssa")

        def loss_on(idx: torch.Tensor, model: TinyLM = model) -> torch.Tensor:
            return F.cross_entropy(model(data[idx, :-1]).flatten(0, 1), data[idx, 1:].flatten())

        train_with_temperatures(model, TrainConfig(steps=5, batch_size=8, lr=1e-4, warmup=0.0), temperature_lr,
                                "position", loss_on, 32, torch.Generator().manual_seed(0), torch.device("cpu"),
                                torch.float32, log=lambda _: None)
        betas.append(abs(model.blocks[0].mixer.temperature.position_param_value.item() - 2.0))
    assert betas[1] > 10 * betas[0]


def test_steps_to_target_interpolates_log_perplexity_between_evaluations() -> None:
    steps, ppl = [10, 20, 30], [8.0, 6.0, 4.0]
    assert steps_to_target(steps, ppl, 6.0) == 20.0
    expected = 20 + 10 * (math.log(6.0) - math.log(5.0)) / (math.log(6.0) - math.log(4.0))
    assert steps_to_target(steps, ppl, 5.0) == pytest.approx(expected)
    assert steps_to_target(steps, ppl, 9.0) == 10.0
    assert math.isnan(steps_to_target(steps, ppl, 3.0))
    with pytest.raises(ValueError):
        steps_to_target([], [], 5.0)


def run_tiny_lm_text(tmp_path, target: float) -> list[dict]:
    from benchmarks import lm_text
    from methods.core.api import RunContext
    from methods.ssa import METHOD
    from methods.ssa.run import SSAArgs

    torch.manual_seed(0)
    ctx = RunContext(scale="test", benchmark_id="lm_text", benchmark=lm_text.BENCHMARK, method=METHOD,
                     variant="ssa_2l", family="ssa", replicate=0, seed=1, data_seed=2,
                     args=SSAArgs(d_model=16, n_layers=1, n_heads=2, steps=4, batch_size=2, eval_every=2,
                                  target_val_perplexity=target),
                     data_args=lm_text.LMTextArgs(seq_len=16, max_val_windows=3, max_test_windows=3),
                     device=torch.device("cpu"), dtype=torch.float32, out_dir=tmp_path)
    METHOD.run(ctx)
    return ctx.rows


def test_lm_run_records_steps_to_target_and_reuses_the_last_val_point(tmp_path) -> None:
    rows = run_tiny_lm_text(tmp_path, target=1e6)
    by = {(r["split"], r["metric"], r["step"]): r["value"] for r in rows}
    assert by[("val", "steps_to_target", None)] == 2.0  # reached at the first evaluation
    assert by[("val", "reached_target", None)] == 1.0
    assert by[("val", "perplexity", None)] == by[("val", "perplexity", 4.0)]
    assert ("test", "perplexity", None) in by and by[("test", "extra_parameters", None)] == 2 * 16 + 1


def test_lm_run_that_misses_the_target_records_its_length_as_a_lower_bound(tmp_path) -> None:
    by = {(r["split"], r["metric"]): r["value"] for r in run_tiny_lm_text(tmp_path, target=1.0)
          if r["step"] is None}
    assert by[("val", "steps_to_target")] == 4.0 and by[("val", "reached_target")] == 0.0


def test_passkey_val_split_leaves_train_and_test_data_unchanged() -> None:
    from benchmarks import passkey

    plain = passkey.load(passkey.PasskeyArgs(num_train=20, num_test=10, haystack_len=8), 5)
    with_val = passkey.load(passkey.PasskeyArgs(num_train=20, num_test=10, num_val=7, haystack_len=8), 5)
    assert "val" not in plain and len(with_val["val"]) == 7
    for name, split in plain.items():
        assert torch.equal(split.inputs, with_val[name].inputs)
