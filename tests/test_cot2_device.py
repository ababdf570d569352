"""CoT2 device plumbing: everything follows the data's device, and a sampler on another device is refused.

No GPU here: an explicit ``device="cpu"`` must give the very numbers of the default path, and the ``meta``
device (shapes only, no data) catches any tensor created on the CPU and mixed into a non-CPU computation.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks import mnns
from methods.cot2.decode import check_generator, rollout
from methods.cot2.fused import FusedSFTStep, sft_mixtures
from methods.cot2.grpo import GRPOSettings, step_log_probs, train_grpo
from methods.cot2.model import build_gpt2
from methods.cot2.optim import FlatAdamW
from methods.cot2.sft import train_epochs

SMALL_MNNS = mnns.MNNSArgs(num_digits=3, digit_low=1, digit_high=5)


def _train_and_decode(device: str | None):
    data = mnns.load(SMALL_MNNS, seed=0)
    train, test = data["train"], data["test"]
    torch.manual_seed(0)
    model = build_gpt2(train.vocab_size, 7, 16, 1, 2)
    gen = torch.Generator() if device is None else torch.Generator(device=device)
    if device is not None:
        train, test, model = train.to(device), test.to(device), model.to(device)
    gen.manual_seed(0)
    train_epochs(model, "csft", train, epochs=2, batch_size=16, lr=3e-3, weight_decay=0.01, generator=gen)
    train_grpo(model, train, GRPOSettings(k=2, steps=2, prompts_per_step=4, rollouts=4, lr=1e-3), gen)
    out = rollout(model, test.prompt, test.num_steps, "mts", k=2, generator=gen)
    return [p.detach().clone() for p in model.parameters()], out


def test_explicit_cpu_device_everywhere_gives_the_default_paths_numbers():
    default_params, default_out = _train_and_decode(None)
    cpu_params, cpu_out = _train_and_decode("cpu")
    assert all(torch.equal(a, b) for a, b in zip(default_params, cpu_params, strict=True))
    assert torch.equal(default_out.answer, cpu_out.answer)
    assert torch.equal(default_out.step_weights, cpu_out.step_weights)


def test_split_to_device_moves_every_tensor():
    split = mnns.load(SMALL_MNNS, seed=0)["train"].to("meta")
    assert split.device.type == "meta"
    assert all(t.device.type == "meta" for t in (split.prompt, split.step_targets, split.trace, split.answer,
                                                  split.traces, split.num_valid))


def test_sampling_generator_on_another_device_is_refused_with_a_clear_error():
    split = mnns.load(SMALL_MNNS, seed=0)["train"].to("meta")
    model = build_gpt2(split.vocab_size, 7, 16, 1, 2).to("meta")
    cpu_gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="create it there"):
        check_generator(cpu_gen, split.device)
    with pytest.raises(ValueError, match="sampling generator is on cpu"):
        rollout(model, split.prompt, 2, "mts", k=2, generator=cpu_gen)
    with pytest.raises(ValueError, match="sampling generator is on cpu"):
        train_epochs(model, "csft", split, epochs=1, batch_size=16, lr=1e-3, weight_decay=0.0, generator=cpu_gen)
    with pytest.raises(ValueError, match="sampling generator is on cpu"):
        train_grpo(model, split, GRPOSettings(steps=1), cpu_gen)
    check_generator(None, split.device)  # deterministic decoders take no generator


@pytest.mark.parametrize("kind", ["no_cot", "discrete", "csft"])
def test_fused_step_optimiser_and_decoders_stay_on_the_data_device(kind):
    # on "meta", any helper tensor made on the CPU (a mask, a gradient buffer) fails to mix in
    split = mnns.load(SMALL_MNNS, seed=0)["train"].to("meta")
    model = build_gpt2(split.vocab_size, 7, 16, 2, 2).to("meta")
    opt = FlatAdamW(model.parameters(), lr=1e-3)
    X, Y = sft_mixtures(kind, split.prompt, split.answer, split.trace, split.step_targets, split.vocab_size)
    loss = FusedSFTStep(model, opt)(X[:8], Y[:8])
    assert loss.device.type == "meta" and opt.flat.device.type == "meta" and opt.exp_avg.device.type == "meta"
    for mode in ("greedy", "continuous", "mts"):
        out = rollout(model, split.prompt[:8], split.num_steps, mode, k=2)
        assert out.answer.device.type == "meta" and out.step_probs.device.type == "meta"
    empty = rollout(model, split.prompt[:8], 0, "greedy")  # no-CoT decoding
    assert empty.step_probs.device.type == "meta"
    out = rollout(model, split.prompt[:8], split.num_steps, "mts", k=2, sample_answer=True)
    lp = step_log_probs(model, split.prompt[:8], out.step_weights, out.step_tokens, out.answer,
                        GRPOSettings(k=2))
    assert lp.device.type == "meta" and lp.shape == (8, split.num_steps + 1)
