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
