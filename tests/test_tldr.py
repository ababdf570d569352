"""TLDR: the verbose-sum task, stop controls (TS, budget forcing), the length reward, a tiny full run."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from benchmarks.token_use import token_use_metrics
from benchmarks.verbose_sum import (
    END_THINK,
    EOS,
    LEVELS,
    PAD,
    WAIT,
    VerboseSumArgs,
    load,
    minimal_tokens,
    parse_responses,
    score,
)
from methods.tldr.evaluate import accuracy_at_tokens, pick_operating_point
from methods.tldr.generation import SpecialTokens, StopControl, control_logits, left_pad, sample
from methods.tldr.policy import PolicyArgs, build_policy
from methods.tldr.rl import LengthReward, _right_padded
from methods.tldr.sft import IGNORE, pack

TOKENS = SpecialTokens(end_think=END_THINK, wait=WAIT, eos=EOS, pad=PAD)
SMALL = VerboseSumArgs(num_train=400, num_val=20, num_test=30)


@pytest.fixture(scope="module")
def data():
    return load(SMALL, seed=3)


def tiny_model(vocab_size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_policy(vocab_size, PolicyArgs(d_model=16, n_layers=1, n_heads=2, mlp_width=32), PAD, 1, EOS)


def test_sft_traces_are_correct_but_longer_than_needed(data):
    train = data["train"]
    metrics = score(train.responses, train)
    assert metrics["accuracy"] == 1.0 and metrics["unfinished"] == 0.0
    _, length, _ = parse_responses(train.responses)
    assert bool((length >= minimal_tokens(train)).all())
    assert metrics["mean_tokens"] > 1.5 * minimal_tokens(train).float().mean().item()


def test_harder_problems_have_longer_traces_and_level_tokens_do_not_change_length(data):
    train = data["train"]
    _, length, _ = parse_responses(train.responses)
    steps = train.steps
    assert length[steps == SMALL.max_steps].float().mean() > length[steps == SMALL.min_steps].float().mean()
    short = length[train.prompts[:, 1] == LEVELS["short"]].float().mean()
    long = length[train.prompts[:, 1] == LEVELS["long"]].float().mean()
    assert abs(short - long) < 4.0  # SFT data carries no length control


def test_load_is_deterministic_per_seed():
    a, b = load(SMALL, seed=5), load(SMALL, seed=5)
    assert torch.equal(a["train"].responses, b["train"].responses)
    assert torch.equal(a["test"].prompts, b["test"].prompts)


def test_score_reads_the_token_after_end_of_thinking_and_fails_unfinished(data):
    test = data["test"].subset(2)
    digit = 10 + test.answers
    responses = torch.tensor([[WAIT, END_THINK, int(digit[0]), EOS, PAD],
                              [WAIT, WAIT, WAIT, WAIT, WAIT]])
    metrics = score(responses, test)
    assert metrics["accuracy"] == 0.5 and metrics["unfinished"] == 0.5
    assert metrics["mean_tokens_correct"] == 4.0 and metrics["mean_tokens_wrong"] == 5.0


def test_token_use_metrics_split_lengths_by_correctness_and_leave_out_empty_groups():
    correct = torch.tensor([True, False, True, True])
    m = token_use_metrics(correct, torch.tensor([10, 30, 20, 30]), torch.tensor([True, True, False, True]))
    assert m["accuracy"] == 0.75 and m["mean_tokens"] == 22.5 and m["unfinished"] == 0.25
    assert m["mean_tokens_correct"] == 20.0 and m["mean_tokens_wrong"] == 30.0
    assert m["accuracy_per_1k_tokens"] == pytest.approx(1000 * 0.75 / 22.5)
    yes = torch.ones(2, dtype=torch.bool)
    all_right = token_use_metrics(yes, torch.tensor([4, 6]), yes)
    assert "mean_tokens_wrong" not in all_right  # no NaN row for an empty group
    with pytest.raises(ValueError, match="lengths"):
        token_use_metrics(correct, torch.tensor([1, 2]), torch.ones(4, dtype=torch.bool))


def test_ts_scale_one_is_identity_and_larger_scales_sharpen_the_stop_decision():
    logits = torch.tensor([[0.0, 0.0, 0.0, 3.0, 0.0, 3.5], [0.0, 0.0, 0.0, -2.0, 0.0, 3.5]])
    thinking = torch.ones(2, dtype=torch.bool)
    zero = torch.zeros(2)
    same = control_logits(logits, zero, thinking, StopControl(ts_scale=1.0), TOKENS)
    assert torch.equal(same, logits)
    p0, p2 = (torch.softmax(control_logits(logits, zero, thinking, StopControl(ts_scale=s), TOKENS), -1)
              for s in (1.0, 2.0))
    assert p2[0, END_THINK] > p0[0, END_THINK]  # stop already plausible: more likely
    assert p2[1, END_THINK] < p0[1, END_THINK]  # stop implausible: even less likely
    done = control_logits(logits, zero, torch.zeros(2, dtype=torch.bool), StopControl(ts_scale=2.0), TOKENS)
    assert torch.equal(done, logits)  # after thinking ended, nothing changes


def test_budget_forcing_forces_the_stop_and_wait_takes_the_stops_mass():
    logits = torch.randn(3, 8)
    thinking = torch.ones(3, dtype=torch.bool)
    generated = torch.tensor([2, 5, 9])
    forced = control_logits(logits, generated, thinking, StopControl(max_think=5), TOKENS).softmax(-1)
    assert forced[1:, END_THINK].tolist() == [1.0, 1.0] and forced[0, END_THINK] < 1.0
    before = logits.softmax(-1)
    waited = control_logits(logits, generated, thinking, StopControl(min_think=6), TOKENS).softmax(-1)
    assert waited[:2, END_THINK].tolist() == [0.0, 0.0]
    assert torch.allclose(waited[:2, WAIT], before[:2, WAIT] + before[:2, END_THINK])
    assert torch.allclose(waited[2], before[2])


def test_sampling_respects_budgets_and_is_reproducible(data):
    test = data["test"]
    model = tiny_model(test.vocab.size)
    control = StopControl(max_think=6, min_think=4)
    first, again = (sample(model, test.prompts, test.prompt_lengths, TOKENS, 12,
                           torch.Generator().manual_seed(1), control) for _ in range(2))
    assert torch.equal(first, again)
    stopped = (first == END_THINK).any(1)
    stop_at = (first == END_THINK).int().argmax(1)[stopped]
    assert bool(((stop_at >= 4) & (stop_at <= 6)).all())
    ended_early = (first[~stopped, :7] == EOS).any(1)  # an untrained model may emit <eos> while thinking
    assert bool(ended_early.all()) and int(stopped.sum()) > len(test) // 2


def test_left_pad_right_aligns_prompts():
    prompts = torch.tensor([[5, 6, 0], [7, 0, 0]])
    ids, mask = left_pad(prompts, torch.tensor([2, 1]), 0)
    assert ids.tolist() == [[0, 5, 6], [0, 0, 7]] and mask.tolist() == [[0, 1, 1], [0, 0, 1]]


def test_pack_labels_only_response_tokens(data):
    train = data["train"].subset(3)
    tokens, labels = pack(train.prompts, train.prompt_lengths, train.responses, PAD)
    for i in range(3):
        n = int(train.prompt_lengths[i])
        assert torch.equal(tokens[i, :n], train.prompts[i, :n])
        assert bool((labels[i, :n] == IGNORE).all())
        response = train.responses[i][train.responses[i] != PAD]
        assert torch.equal(labels[i][labels[i] != IGNORE], response)


def test_length_reward_penalises_distance_to_the_level_budget():
    answers = torch.tensor([3, 3, 3])
    row = [WAIT] * 8 + [END_THINK, 13, EOS]  # 11 tokens, answer 3
    responses = torch.tensor([row, row, row[:8] + [END_THINK, 14, EOS]])
    levels = torch.tensor([LEVELS["short"], LEVELS["long"], LEVELS["long"]])
    distance = LengthReward({"short": 11, "long": 22}, alpha=1.0)
    rewards, lengths = distance(responses, answers, levels)
    assert lengths.tolist() == [11, 11, 11]
    assert torch.allclose(rewards, torch.tensor([1.0, 0.5, -0.5]))
    over = LengthReward({"short": 11, "long": 22}, alpha=1.0, penalty="over")
    assert over(responses, answers, levels)[0].tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="penalty"):
        LengthReward({"short": 5}, 1.0, penalty="linear")


def test_rollout_rows_are_prompt_then_response():
    prompts = torch.tensor([[1, 6, 2, 0], [1, 7, 2, 9]])
    rows = _right_padded(prompts, torch.tensor([3, 4]), torch.tensor([[5, 4], [3, 4]]), 0)
    assert rows.tolist() == [[1, 6, 2, 5, 4, 0], [1, 7, 2, 9, 3, 4]]


def test_operating_point_is_the_cheapest_within_tolerance_and_matching_interpolates():
    assert pick_operating_point([1, 2, 3], [0.9, 0.89, 0.6], [25, 16, 10], 0.9, 0.02) == 2
    assert pick_operating_point([1, 2], [0.5, 0.6], [25, 16], 0.9, 0.02) == 2  # none within: most accurate
    assert accuracy_at_tokens([20, 10], [0.8, 0.4], [15, 5, 30]) == pytest.approx([0.6, 0.4, 0.8])


def test_stage_and_variants_run_end_to_end_on_tiny_sizes(tmp_path):
    from methods.core.api import RunContext
    from methods.registry import get_benchmark, get_method
    from methods.tldr.run import BudgetArgs, SFTArgs, SFTStageArgs, TLDRArgs, TSArgs

    method, bench = get_method("tldr"), get_benchmark("verbose_sum")
    data_args = dataclasses.replace(SMALL, num_train=200)

    def ctx(family: str, args, out, inputs=None) -> RunContext:
        return RunContext(scale="test", benchmark_id="verbose_sum", benchmark=bench, method=method,
                          variant=family, family=family, replicate=0, seed=1, data_seed=2, args=args,
                          data_args=data_args,
                          device=torch.device("cpu"), dtype=torch.float32, out_dir=out, inputs=inputs or {})

    stage_dir = tmp_path / "stage"
    stage_dir.mkdir()
    eval_args = dict(max_new_tokens=16, eval_batch_size=64)
    method.run_stage(ctx("sft_model", SFTStageArgs(steps=3, batch_size=8, d_model=16, n_layers=1, n_heads=2,
                                                   mlp_width=32, **eval_args), stage_dir))
    assert set(json.loads((stage_dir / "reference.json").read_text())) == {"val", "test"}
    rows = {}
    for family, args in (("sft", SFTArgs(level_budgets={"short": 6, "long": 12}, **eval_args)),
                         ("ts", TSArgs(scales=[1.0, 2.0], **eval_args)),
                         ("budget_forcing", BudgetArgs(budgets=[4, 8], wait=True, **eval_args)),
                         ("tldr", TLDRArgs(rl_steps=1, prompts_per_step=3, group_size=2, log_every=1,
                                           **eval_args))):
        run_ctx = ctx(family, args, tmp_path / family, {"sft_model": stage_dir})
        method.run(run_ctx)
        rows[family] = {(r["metric"], r["split"]) for r in run_ctx.rows}
        assert all(np.isfinite(r["value"]) for r in run_ctx.rows)
    assert {("length_error", "test_long"), ("level_span", "test")} <= rows["sft"]
    assert {("accuracy_matched_tokens", "test"), ("accuracy", "sweep_val")} <= rows["ts"]
    assert ("accuracy", "sweep") in rows["budget_forcing"]
    assert {("length_error", "test_short"), ("levels_ordered", "test")} <= rows["tldr"]


def test_level_stop_probs_make_short_level_traces_shorter_than_long_ones():
    args = dataclasses.replace(SMALL, num_train=3000, level_stop_probs={"short": 0.4, "long": 0.1})
    train = load(args, seed=3)["train"]
    _, length, _ = parse_responses(train.responses)
    by_level = {name: length[train.prompts[:, 1] == LEVELS[name]].float().mean() for name in ("short", "long")}
    assert by_level["short"] + 6 < by_level["long"]
    with pytest.raises(ValueError, match="level_stop_probs"):
        load(dataclasses.replace(SMALL, level_stop_probs={"tiny": 0.5}), seed=3)


def test_paired_level_batches_ask_each_problem_at_every_level(data):
    from methods.tldr.rl import level_batch

    levels = torch.tensor([LEVELS["short"], LEVELS["medium"], LEVELS["long"]])
    idx, prompts = level_batch(data["train"], levels, 6, True, torch.Generator().manual_seed(0))
    assert idx.tolist()[0::3] == idx.tolist()[1::3] == idx.tolist()[2::3]
    assert prompts[:, 1].tolist() == levels.repeat(2).tolist()
    assert torch.equal(prompts[:, 2:], data["train"].prompts[idx, 2:])
    with pytest.raises(ValueError, match="multiple"):
        level_batch(data["train"], levels, 4, True, torch.Generator().manual_seed(0))


def test_length_regularised_reward_distance_and_over_forms():
    from methods.tldr.rl import length_regularised_reward

    correct, length, budget = torch.tensor([1.0, 1.0, 0.0]), torch.tensor([10, 30, 20]), torch.tensor([20.0] * 3)
    assert length_regularised_reward(correct, length, budget, 1.0).tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert length_regularised_reward(correct, length, budget, 1.0, "over").tolist() == pytest.approx([1, .5, 0])


def test_smoke_task_rejects_the_vllm_backend_with_a_clear_error():
    from methods.tldr.run import EvalArgs, _settings

    assert _settings(EvalArgs()).max_new_tokens == EvalArgs().max_new_tokens
    with pytest.raises(ValueError, match="backend 'vllm' is for math_reasoning"):
        _settings(EvalArgs(backend="vllm"))
