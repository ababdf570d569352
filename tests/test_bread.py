"""BREAD: the chain benchmark, the reward, and the branched-rollout search over expert episodes."""

from __future__ import annotations

import torch

from benchmarks.chain_reasoning import EOS, PAD, ChainArgs, load, score
from methods.bread.branching import branch_failed_groups
from methods.bread.run import make_reward
from methods.rl.generation import Generation, right_pad

ARGS = ChainArgs(num_states=6, num_actions=3, easy_steps=2, hard_steps=5, num_train=16, num_test=8)


def test_chain_data_is_deterministic_per_seed_and_traces_follow_the_table():
    a, b = load(ARGS, 3), load(ARGS, 3)
    assert all(torch.equal(x, y) for x, y in zip(a["train"].traces, b["train"].traces, strict=True))
    hard = a["test_hard"]
    assert hard.steps.eq(5).all() and all(t.numel() == 6 and t[-1] == EOS for t in hard.traces)
    assert a["test_easy"].steps.max() <= 2
    assert torch.equal(hard.answers, torch.stack([t[-2] for t in hard.traces]))


class ScriptedSampler:
    """Completes with the expert's remaining episodes when given >= need of them, else errs at once."""

    def __init__(self, traces, prompts, need: int) -> None:
        self.traces, self.prompts, self.need, self.calls = traces, prompts, need, 0

    def sample(self, prompts, max_new_tokens, *, temperature=1.0, generator=None) -> Generation:
        self.calls += 1
        rows, plens, clens = [], [], []
        for row in prompts:
            pid = next(i for i, p in enumerate(self.prompts) if torch.equal(row[: p.numel()], p))
            j = row.numel() - self.prompts[pid].numel()
            rest = self.traces[pid][j:].clone()
            if j < self.need:
                rest[0] = PAD + 3 if rest[0] != PAD + 3 else PAD + 4  # a wrong state
            rows.append(torch.cat([row, rest]))
            plens.append(row.numel())
            clens.append(rest.numel())
        return Generation(right_pad(rows, PAD), torch.tensor(plens), torch.tensor(clens), PAD)


def test_branching_finds_the_shortest_successful_prefix_and_guarantees_a_success():
    split = load(ARGS, 0)["test_hard"]
    prompts = [split.prompts[i] for i in range(3)]
    traces = [split.traces[i] for i in range(3)]
    sampler = ScriptedSampler(traces, prompts, need=3)
    reward = make_reward(split)
    out = branch_failed_groups(sampler, split.prompts, split.traces, split.steps, torch.tensor([0, 1, 2]),
                               reward, group_size=2, temperature=1.0, generator=torch.Generator())
    assert out.prefix_episodes.tolist() == [3, 3, 3]  # shortest prefix that succeeds
    assert out.rewards.view(3, 2).max(1).values.eq(1).all()
    assert out.expert_rows == 0 and sampler.calls <= 3  # binary search over 4 boundaries

    hopeless = ScriptedSampler(traces, prompts, need=99)
    out = branch_failed_groups(hopeless, split.prompts, split.traces, split.steps, torch.tensor([0]),
                               reward, group_size=2, temperature=1.0, generator=torch.Generator())
    assert out.rewards.tolist() == [1.0, 0.0] and out.expert_rows == 1  # expert's last episode inserted
    assert out.generation.completion_mask()[0].sum() == 2  # the expert's final state and EOS are scored


def test_reward_needs_the_whole_chain_and_score_reports_greedy_and_pass_at_k():
    split = load(ARGS, 1)["test_hard"]
    reward = make_reward(split)
    good = torch.cat([split.prompts[0], split.traces[0]])
    bad = good.clone()
    first = split.prompts[0].numel()
    bad[first] = (bad[first] - 3 + 1) % 6 + 3  # a different state at the first step
    gen = Generation(right_pad([good, bad], PAD), torch.tensor([split.prompts[0].numel()] * 2),
                     torch.tensor([6, 6]), PAD)
    assert reward(gen, torch.tensor([0, 0])).tolist() == [1.0, 0.0]
    correct = torch.tensor([[True, False, True], [False, False, False]])
    assert score(correct, 2) == {"accuracy": 0.5, "pass_at_2": 0.5}


def test_slot_layout_puts_each_steps_action_at_a_constant_offset_for_every_chain_length():
    args = ChainArgs(num_states=6, num_actions=3, easy_steps=2, hard_steps=5, num_train=16, num_test=8)
    data = load(args, 4)
    first_action = 3 + args.num_states
    for split in (data["test_easy"], data["test_hard"]):
        for prompt, trace, k in zip(split.prompts, split.traces, split.steps.tolist(), strict=True):
            assert prompt.numel() == args.hard_steps + 2  # same prompt length for every K
            row = torch.cat([prompt, trace])
            for j in range(k):  # step j is predicted at position len(prompt)-1+j; its action is hard_steps+1 back
                predicting = prompt.numel() - 1 + j
                assert row[predicting - (args.hard_steps + 1)] >= first_action
            assert (prompt[k: args.hard_steps] == PAD).all()  # empty slots


def test_validation_splits_leave_train_and_test_unchanged():
    plain = load(ARGS, 2)
    with_val = load(ChainArgs(**{**ARGS.__dict__, "num_val": 5}), 2)
    assert set(with_val) - set(plain) == {"val_easy", "val_hard"} and len(with_val["val_hard"]) == 5
    for name in plain:
        assert all(torch.equal(a, b) for a, b in zip(plain[name].prompts, with_val[name].prompts, strict=True))
    compact = load(ChainArgs(**{**ARGS.__dict__, "layout": "compact"}), 2)["test_hard"]
    assert compact.prompts[0].numel() == 5 + 2 and compact.prompts[0][-1] == 1  # start, 5 actions, SEP


def test_expert_planning_tokens_are_accepted_beside_plain_states_and_wrong_steps_are_not():
    from benchmarks.chain_reasoning import planning_token

    args = ChainArgs(num_states=6, num_actions=3, easy_steps=2, hard_steps=5, num_train=16, num_test=8,
                     expert_lookahead=2)
    split = load(args, 5)["test_hard"]
    plain = split.plain[0][:-1] - 3
    expected = planning_token(plain.numpy(), plain.numpy()[[2, 3, 4, 4, 4]], args)
    assert split.traces[0][:-1].tolist() == expected.tolist()  # (state, state two steps ahead), capped at K
    assert split.vocab_size == 3 + 6 + 3 + 36
    reward = make_reward(split)
    prompt = split.prompts[0]
    mixed = split.plain[0].clone()
    mixed[:2] = split.traces[0][:2]  # first two steps in the expert's style, the rest plain
    wrong = split.traces[0].clone()
    wrong[1] = planning_token(plain.numpy()[1:2], (plain.numpy()[3:4] + 1) % 6, args)[0]  # wrong look-ahead
    rows = [torch.cat([prompt, t]) for t in (split.traces[0], split.plain[0], mixed, wrong)]
    gen = Generation(right_pad(rows, PAD), torch.tensor([prompt.numel()] * 4), torch.tensor([6] * 4), PAD)
    assert reward(gen, torch.zeros(4, dtype=torch.long)).tolist() == [1.0, 1.0, 1.0, 0.0]


def test_curve_evaluation_reports_the_same_greedy_accuracy_without_sampling():
    from methods.bread.run import StudentArgs, build_student, evaluate

    split = load(ARGS, 6)["test_easy"]
    torch.manual_seed(0)
    model = build_student(StudentArgs(d_model=16, n_layers=1, n_heads=2), split.vocab_size)
    full = evaluate(model, split, 8, 4, torch.Generator().manual_seed(0))
    curve = evaluate(model, split, 8, 0, torch.Generator().manual_seed(0))
    assert set(full) == {"accuracy", "pass_at_4"} and curve == {"accuracy": full["accuracy"]}
