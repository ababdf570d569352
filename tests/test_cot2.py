"""CoT2: task generators, the continuous-token GPT-2, the flat optimiser, decoders, GRPO, one DAG job."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks import mnns, prontoqa, prosqa
from benchmarks.reasoning import ReasoningSplit, pass_at_k_estimate, score
from methods.cot2.decode import dirichlet_concentration, dirichlet_log_prob, dirichlet_support, rollout
from methods.cot2.fused import FusedSFTStep, sft_mixtures
from methods.cot2.grpo import GRPOSettings, step_log_probs, train_grpo
from methods.cot2.model import build_gpt2, embed_mixture, embed_tokens, logits
from methods.cot2.optim import FlatAdamW
from methods.cot2.run import SFTArgs
from methods.cot2.sft import lr_factor, supervised_loss, top_beam_targets, train_epochs

SMALL_MNNS = mnns.MNNSArgs(num_digits=3, digit_low=1, digit_high=5)
SMALL_GRAPH = prosqa.GraphArgs(depth=3, max_branch=2, num_node_tokens=32, num_train=64, num_test=32)


def _digits(split: ReasoningSplit, args: mnns.MNNSArgs) -> np.ndarray:
    return (split.prompt[:, 1:-1] - len(mnns.SPECIALS)).numpy()


def test_mnns_split_keeps_every_permutation_of_a_multiset_on_one_side():
    data = mnns.load(SMALL_MNNS, seed=3)
    train = {tuple(sorted(r)) for r in _digits(data["train"], SMALL_MNNS)}
    test = {tuple(sorted(r)) for r in _digits(data["test"], SMALL_MNNS)}
    assert train and test and not train & test
    assert len(data["train"]) + len(data["test"]) == 5**3


def test_mnns_answer_is_the_minimum_non_negative_sum_and_trace_reaches_it():
    split = mnns.load(SMALL_MNNS, seed=0)["train"]
    vocab = split.vocab
    for i in range(0, len(split), 7):
        digits = _digits(split, SMALL_MNNS)[i]
        sums = [sum(s * d for s, d in zip(signs, digits, strict=True))
                for signs in itertools.product((1, -1), repeat=len(digits))]
        assert vocab[int(split.answer[i])] == f"S{min(s for s in sums if s >= 0)}"
        partial = [int(vocab[int(t)][1:]) for t in split.trace[i]]
        assert abs(partial[0]) == digits[0]
        assert abs(int(vocab[int(split.answer[i])][1:]) - partial[-1]) == digits[-1]


def test_mnns_csft_targets_are_the_distribution_over_all_sign_patterns():
    split = mnns.load(SMALL_MNNS, seed=0)["train"]
    assert torch.allclose(split.step_targets.sum(-1), torch.ones(len(split), split.num_steps))
    first_digit = split.prompt[:, 1] - len(mnns.SPECIALS)
    s0 = split.vocab.index("S0")
    plus_first = split.step_targets[torch.arange(len(split)), 0, s0 + first_digit]
    assert torch.allclose(plus_first, torch.full((len(split),), 0.5))  # half the patterns start with +d_1
    assert torch.allclose(top_beam_targets(split, 2**3), top_beam_targets(split, 99))  # all valid traces
    one = top_beam_targets(split, 1)  # the single best trace: one-hot on its tokens
    assert torch.equal(one.argmax(-1), split.traces[:, 0])
    assert torch.allclose(one.max(-1).values, torch.ones(1))


@pytest.mark.parametrize("task", [prosqa, prontoqa])
def test_graph_tasks_trace_walks_the_frontier_and_data_is_fixed_by_seed(task):
    a, b = task.load(SMALL_GRAPH, seed=5), task.load(SMALL_GRAPH, seed=5)
    assert torch.equal(a["train"].prompt, b["train"].prompt)
    split = a["train"]
    on_frontier = split.step_targets.gather(-1, split.trace[..., None]).squeeze(-1)
    assert (on_frontier > 0).all()
    assert torch.allclose(split.step_targets.sum(-1), torch.ones_like(on_frontier))
    if task is prosqa:  # the answer is one of the two candidates at the end of the prompt
        assert ((split.prompt[:, -2:] == split.answer[:, None]).sum(1) == 1).all()
    else:
        assert set(split.answer.tolist()) == {prosqa.SPECIALS.index("<YES>"), prosqa.SPECIALS.index("<NO>")}


def test_edge_token_layout_writes_the_same_graphs_one_token_per_edge():
    pairs = prosqa.load(SMALL_GRAPH, seed=3)["train"]
    edges = prosqa.load(dataclasses.replace(SMALL_GRAPH, edge_tokens=True), seed=3)["train"]
    assert torch.equal(pairs.answer, edges.answer) and torch.equal(pairs.trace, edges.trace)
    assert torch.equal(pairs.prompt[:, -4:], edges.prompt[:, -4:])  # the same question
    offset, n = len(prosqa.SPECIALS), SMALL_GRAPH.num_node_tokens
    assert edges.vocab_size == offset + n + n * n
    for i in range(5):
        body = [t for t in pairs.prompt[i, :-4].tolist() if t > prosqa.SPECIALS.index("<BOS>")]
        as_pairs = list(zip(body[::2], body[1::2], strict=True))
        ids = [t - offset - n for t in edges.prompt[i, :-4].tolist() if t >= offset + n]
        assert [(offset + e // n, offset + e % n) for e in ids] == as_pairs


def test_graph_task_rejects_a_vocabulary_too_small_for_the_trees():
    with pytest.raises(ValueError, match="num_node_tokens"):
        prosqa.load(prosqa.GraphArgs(depth=4, max_branch=2, num_node_tokens=20), seed=0)


def test_twin_has_gpt2s_parameters_and_loads_into_transformers_gpt2():
    torch.manual_seed(0)
    twin = build_gpt2(vocab_size=30, n_positions=12, d_model=24, n_layers=2, n_heads=2)
    hf = build_gpt2(vocab_size=30, n_positions=12, d_model=24, n_layers=2, n_heads=2, hf=True).eval()
    ours, theirs = twin.state_dict(), hf.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert twin.lm_head.weight is twin.transformer.wte.weight
    residual = twin.transformer.h[0].mlp.c_proj.weight.std().item()
    assert 0.5 * 0.02 / 2 < residual < 1.5 * 0.02 / 2  # GPT-2's scaled init, 0.02 / sqrt(2 * 2 layers)
    hf.load_state_dict(ours)
    embeds = torch.randn(3, 10, 24)
    assert torch.allclose(logits(twin.eval(), embeds), hf(inputs_embeds=embeds).logits, atol=1e-5)


def test_lean_forward_equals_transformers_gpt2_forward():
    torch.manual_seed(0)
    model = build_gpt2(vocab_size=30, n_positions=12, d_model=24, n_layers=2, n_heads=2, hf=True).eval()
    embeds = torch.randn(3, 10, 24)
    assert torch.allclose(logits(model, embeds), model(inputs_embeds=embeds).logits, atol=1e-5)
    assert torch.allclose(logits(model, embeds, last=2), logits(model, embeds, use_hf_forward=True, last=2),
                          atol=1e-5)


def test_flat_adamw_takes_the_same_steps_as_torch_adamw():
    torch.manual_seed(0)
    a = build_gpt2(vocab_size=20, n_positions=8, d_model=16, n_layers=1, n_heads=2)
    b = build_gpt2(vocab_size=20, n_positions=8, d_model=16, n_layers=1, n_heads=2)
    b.load_state_dict(a.state_dict())
    flat, ref = FlatAdamW(a.parameters(), lr=1e-2), torch.optim.AdamW(b.parameters(), lr=1e-2)
    x = torch.randint(0, 20, (4, 8))
    for _ in range(3):
        for model, opt in ((a, flat), (b, ref)):
            opt.zero_grad()
            logits(model, embed_tokens(model, x)).logsumexp(-1).mean().backward()
            opt.step()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-4), name  # steps are ~lr = 1e-2


@pytest.mark.parametrize("kind", ["csft", "discrete", "no_cot"])
def test_fused_sft_step_gives_autograds_loss_and_gradients(kind):
    split = mnns.load(SMALL_MNNS, seed=0)["train"].subset(torch.arange(6))
    torch.manual_seed(0)
    model = build_gpt2(split.vocab_size, 8, d_model=16, n_layers=2, n_heads=2)  # 8 > 6 positions used
    opt = FlatAdamW(model.parameters(), lr=1e-3)
    entropy = -(split.step_targets * split.step_targets.clamp_min(1e-12).log()).sum((1, 2)).mean()
    reference = supervised_loss(model, kind, split.prompt, split.answer, split.trace, split.step_targets)
    opt.zero_grad()
    reference.backward()
    expected = opt.grad.clone()
    opt.grad.fill_(123.0)  # the fused step must overwrite every gradient, not accumulate
    X, Y = sft_mixtures(kind, split.prompt, split.answer, split.trace, split.step_targets, split.vocab_size)
    loss = FusedSFTStep(model, opt).loss_and_grad(X, Y, entropy if kind == "csft" else 0.0)
    assert torch.allclose(loss, reference.detach(), atol=1e-5)
    assert torch.allclose(opt.grad, expected, atol=1e-6)


def test_fused_training_follows_the_autograd_training_path():
    split = mnns.load(SMALL_MNNS, seed=0)["train"]
    models = []
    for use_fused in (True, False):
        torch.manual_seed(0)
        model = build_gpt2(split.vocab_size, 7, 16, 1, 2)
        train_epochs(model, "csft", split, epochs=2, batch_size=16, lr=1e-3, weight_decay=0.01,
                     generator=torch.Generator().manual_seed(0), use_fused=use_fused)
        models.append(model)
    for pa, pb in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-4)


def test_cosine_schedule_warms_up_decays_to_zero_and_both_training_paths_follow_it():
    factor = lr_factor("cosine", steps=100, warmup=0.1)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0) and factor(99) < 1e-3
    assert all(factor(s) >= factor(s + 1) for s in range(10, 99))
    assert lr_factor("constant", 100, 0.0)(57) == 1.0
    split = mnns.load(SMALL_MNNS, seed=0)["train"]
    models, last_lr = [], []
    for use_fused in (True, False):
        torch.manual_seed(0)
        model = build_gpt2(split.vocab_size, 7, 16, 1, 2)
        opt = train_epochs(model, "csft", split, epochs=2, batch_size=16, lr=1e-3, weight_decay=0.01,
                           generator=torch.Generator().manual_seed(0), use_fused=use_fused,
                           lr_schedule="cosine", lr_warmup=0.2)
        models.append(model)
        last_lr.append(opt.lr)
    for pa, pb in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-4)
    torch.manual_seed(0)
    constant = build_gpt2(split.vocab_size, 7, 16, 1, 2)
    train_epochs(constant, "csft", split, epochs=2, batch_size=16, lr=1e-3, weight_decay=0.01,
                 generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(next(constant.parameters()), next(models[0].parameters()))
    assert last_lr[0] < 1e-3 * 0.05  # the fused path's optimiser ends near the bottom of the cosine


@pytest.mark.parametrize("schedule, warmup, message", [
    ("linear", 0.0, "unknown lr_schedule 'linear'"),
    ("constant", 0.1, "lr_warmup needs lr_schedule: cosine"),
    ("cosine", 1.0, r"lr_warmup is a fraction of the steps in \[0, 1\)"),
])
def test_bad_learning_rate_schedules_are_refused_when_the_config_is_read(schedule, warmup, message):
    with pytest.raises(ValueError, match=message):
        SFTArgs(lr_schedule=schedule, lr_warmup=warmup)


def test_compiled_training_follows_the_eager_fused_path_and_a_short_batch_runs_eagerly():
    split = mnns.load(SMALL_MNNS, seed=0)["train"]
    assert len(split) % 16, "the split must end in a short batch for this test"
    models, steps = [], []
    for compile_step in (False, True):
        torch.manual_seed(0)
        model = build_gpt2(split.vocab_size, 7, 16, 1, 2)
        opt = train_epochs(model, "csft", split, epochs=2, batch_size=16, lr=1e-3, weight_decay=0.01,
                           generator=torch.Generator().manual_seed(0), compile_step=compile_step)
        models.append(model)
        steps.append(opt.steps)
    assert steps[0] == steps[1]
    for pa, pb in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-5)


def test_compiling_needs_the_fused_step():
    split = mnns.load(SMALL_MNNS, seed=0)["train"]
    model = build_gpt2(split.vocab_size, 7, 16, 1, 2)
    with pytest.raises(ValueError, match="compile_step needs the fused step"):
        train_epochs(model, "csft", split, epochs=1, batch_size=16, lr=1e-3, weight_decay=0.01,
                     generator=torch.Generator().manual_seed(0), use_fused=False, compile_step=True)


def test_cached_decoding_equals_recomputing_the_prefix():
    torch.manual_seed(0)
    model = build_gpt2(vocab_size=15, n_positions=8, d_model=16, n_layers=2, n_heads=2).eval()
    prompt = torch.randint(0, 15, (5, 4))
    out = rollout(model, prompt, 3, "continuous")
    embeds = embed_tokens(model, prompt)
    with torch.no_grad():
        for t in range(3):
            probs = logits(model, embeds, last=1)[:, 0].softmax(-1)
            assert torch.allclose(probs, out.step_probs[:, t], atol=1e-6)
            embeds = torch.cat([embeds, embed_mixture(model, probs)[:, None]], 1)


def test_one_hot_continuous_token_is_the_discrete_token():
    torch.manual_seed(0)
    model = build_gpt2(vocab_size=15, n_positions=8, d_model=16, n_layers=1, n_heads=2)
    prompt = torch.randint(0, 15, (5, 4))
    greedy = rollout(model, prompt, 3, "greedy")
    mts_one = rollout(model, prompt, 3, "mts", k=4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(greedy.step_weights.sum(-1), torch.ones(5, 3))
    assert torch.allclose(mts_one.step_weights.sum(-1), torch.ones(5, 3))
    # feeding the greedy tokens teacher-forced reproduces the greedy answer
    forced = torch.cat([embed_tokens(model, prompt), embed_tokens(model, greedy.step_tokens[..., 0])], 1)
    out = logits(model, forced, last=1)
    assert torch.equal(out[:, 0].argmax(-1), greedy.answer)


def test_csft_learns_mnns_better_than_chance_in_a_few_epochs():
    data = mnns.load(SMALL_MNNS, seed=0)
    torch.manual_seed(0)
    model = build_gpt2(data["train"].vocab_size, 7, 24, 2, 2)
    before = supervised_loss(model, "csft", data["train"].prompt, data["train"].answer,
                             targets=data["train"].step_targets).item()
    train_epochs(model, "csft", data["train"], epochs=15, batch_size=16, lr=3e-3, weight_decay=0.01,
                 generator=torch.Generator().manual_seed(0))
    after = supervised_loss(model, "csft", data["train"].prompt, data["train"].answer,
                            targets=data["train"].step_targets).item()
    assert after < 0.5 * before


def test_dirichlet_log_prob_matches_torch_distribution_on_the_support():
    probs = torch.tensor([[0.6, 0.3, 0.0999, 0.0001]])
    support = dirichlet_support(probs)
    conc = dirichlet_concentration(probs, support, 2.0)
    point = torch.tensor([[0.5, 0.3, 0.2, 0.0]])
    expected = torch.distributions.Dirichlet(conc[0, :3]).log_prob(point[0, :3])
    assert torch.allclose(dirichlet_log_prob(point, conc, support)[0], expected, atol=1e-5)


def test_mts_log_prob_is_the_sum_over_the_k_sampled_tokens():
    torch.manual_seed(0)
    model = build_gpt2(vocab_size=12, n_positions=8, d_model=16, n_layers=1, n_heads=2)
    prompt = torch.randint(0, 12, (4, 3))
    settings = GRPOSettings(sampling="mts", k=3)
    out = rollout(model, prompt, 2, "mts", k=3, sample_answer=True,
                  generator=torch.Generator().manual_seed(1))
    lp = step_log_probs(model, prompt, out.step_weights, out.step_tokens, out.answer, settings)
    first = (logits(model, embed_tokens(model, prompt), last=1)[:, 0] / 3).log_softmax(-1)
    assert torch.allclose(lp[:, 0], first.gather(-1, out.step_tokens[:, 0]).sum(-1), atol=1e-5)


@pytest.mark.parametrize("sampling", ["mts", "dirichlet"])
def test_grpo_step_updates_the_policy(sampling):
    data = mnns.load(SMALL_MNNS, seed=0)["train"]
    torch.manual_seed(0)
    model = build_gpt2(data.vocab_size, 7, 16, 1, 1)
    before = [p.detach().clone() for p in model.parameters()]
    rewards = []
    settings = GRPOSettings(sampling=sampling, k=2, steps=3, prompts_per_step=4, rollouts=4, lr=1e-3)
    train_grpo(model, data, settings, torch.Generator().manual_seed(0),
               on_step=lambda step, stats: rewards.append(stats["reward"]))
    assert len(rewards) == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_score_gives_accuracy_for_answers_and_pass_at_k_for_draws():
    split = mnns.load(SMALL_MNNS, seed=0)["test"]
    assert score(split.answer, split) == {"accuracy": 1.0}
    draws = split.answer[:, None].repeat(1, 4)
    draws[:, 1:] = -1
    got = score(draws, split)
    assert got["pass_at_1"] == pytest.approx(0.25) and got["pass_at_4"] == pytest.approx(1.0)
    assert pass_at_k_estimate(16, torch.tensor([0, 16]), 16).tolist() == [0.0, 1.0]


def test_stage_then_grpo_job_runs_through_the_job_runner(tmp_path):
    from methods.core.config import load_config, resolve_jobs
    from methods.core.job import run_job

    config = tmp_path / "cfg.yaml"
    config.write_text("""
scale: test
replicates: 1
device: cpu
methods:
  cot2:
    args: {n_layers: 1, n_heads: 1, d_model: 16, pass_k: 4}
    benchmarks:
      mnns:
        data: {num_digits: 3, digit_low: 1, digit_high: 4}
        stages:
          sft: {family: cot2_csft, epochs: 1, batch_size: 32, lr: 3.0e-3}
        variants:
          start: {family: evaluate, after: sft}
          grpo: {family: grpo, after: sft, k: 2, steps: 2, prompts_per_step: 4, rollouts: 4}
""")
    jobs = resolve_jobs(load_config(config))
    for job in jobs:
        job.out = str(tmp_path / job.out)
        job.inputs = {k: str(tmp_path / v) for k, v in job.inputs.items()}
        run_job(job)
    rows = pd.read_parquet(tmp_path / jobs[-1].out / "metrics.parquet")
    assert {"accuracy", "token_entropy", "train_reward", "answer_mode_share", "majority_answer_share"} <= set(
        rows["metric"])
    assert (tmp_path / jobs[0].out / "model.pt").is_file()


def test_mode_share_flags_a_constant_answer():
    from methods.cot2.run import mode_share

    assert mode_share(torch.tensor([3, 3, 3, 3])) == 1.0
    assert mode_share(torch.tensor([1, 2, 2, 5])) == 0.5
