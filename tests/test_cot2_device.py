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


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                  reason="no GPU"))]


@pytest.mark.parametrize("device", DEVICES)
def test_every_family_runs_through_the_job_runner_on_the_configured_device(tmp_path, device):
    import pandas as pd

    from methods.core.config import load_config, resolve_jobs
    from methods.core.job import run_job

    config = tmp_path / "cfg.yaml"
    config.write_text(f"""
scale: test
replicates: 1
device: {device}
methods:
  cot2:
    args: {{n_layers: 1, n_heads: 1, d_model: 16, pass_k: 4, curve_every: 1}}
    benchmarks:
      mnns:
        data: {{num_digits: 3, digit_low: 1, digit_high: 4}}
        args: {{epochs: 1, batch_size: 32, lr: 3.0e-3}}
        stages:
          sft: {{family: discrete_sft}}
        variants:
          csft: {{family: cot2_csft, top_beams: 2}}
          no_cot: {{family: no_cot}}
          csft_dropout: {{family: cot2_csft, dropout: 0.1}}  # the autograd path (paper profile)
          start: {{family: evaluate, after: sft}}
          grpo: {{family: grpo, after: sft, k: 2, steps: 2, prompts_per_step: 4, rollouts: 4}}
          grpo_dir: {{family: grpo, after: sft, sampling: dirichlet, steps: 2, prompts_per_step: 4,
                      rollouts: 4}}
""")
    jobs = resolve_jobs(load_config(config))
    for job in jobs:
        job.out = str(tmp_path / job.out)
        job.inputs = {k: str(tmp_path / v) for k, v in job.inputs.items()}
        run_job(job)
    for job in jobs[1:]:
        rows = pd.read_parquet(tmp_path / job.out / "metrics.parquet")
        assert rows["value"].map(type).eq(float).all() and rows["value"].notna().all()
        assert "accuracy" in set(rows["metric"])
    stage = torch.load(tmp_path / jobs[0].out / "model.pt", weights_only=True)  # no map_location needed
    assert all(t.device.type == "cpu" for t in stage.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_fused_step_on_cuda_matches_the_cpu_step():
    split = mnns.load(SMALL_MNNS, seed=0)["train"]
    torch.manual_seed(0)
    cpu_model = build_gpt2(split.vocab_size, 7, 16, 2, 2)
    cuda_model = build_gpt2(split.vocab_size, 7, 16, 2, 2)
    cuda_model.load_state_dict(cpu_model.state_dict())
    cuda_model.to("cuda")
    X, Y = sft_mixtures("csft", split.prompt, split.answer, split.trace, split.step_targets, split.vocab_size)
    cpu_opt, cuda_opt = FlatAdamW(cpu_model.parameters(), lr=1e-3), FlatAdamW(cuda_model.parameters(), lr=1e-3)
    cpu_loss = FusedSFTStep(cpu_model, cpu_opt)(X[:16], Y[:16])
    cuda_loss = FusedSFTStep(cuda_model, cuda_opt)(X[:16].cuda(), Y[:16].cuda())
    assert torch.allclose(cpu_loss, cuda_loss.cpu(), atol=1e-4)
    assert torch.allclose(cpu_opt.grad, cuda_opt.grad.cpu(), atol=1e-5)
    assert torch.allclose(cpu_opt.flat, cuda_opt.flat.cpu(), atol=1e-5)
