"""Multi-step chain reasoning with expert traces: a student-expert Markov chain (BREAD, arXiv 2506.17211 §3).

A hidden transition table ``T[action, state] -> state`` (a random permutation per action, fixed per data
seed) defines a Markov chain. A problem gives a start state and ``K`` actions; its answer is the chain of
states reached by applying them in order. Example (states s0..s7 = tokens 3-10, actions a0..a3 = tokens
11-14, K=3, hard_steps=5, the default "slots" layout)::

    prompt      a2 a0 a3 _ _ = s5      (K action slots of hard_steps, empty slots, separator, start state)
    expert      s1 s6 s6               (one episode per step: the state after each action)
    answer      s6                     (the last state the student writes)

Step j's action sits hard_steps + 1 tokens before the position that predicts step j, for every K and
every expert prefix, so one step is one local lookup a tiny student can represent (the "compact" layout
``s5 a2 a0 a3 =`` makes that offset depend on K, which a 26k-parameter student learns poorly).

The expert trace has one *episode* per step (the anchors BREAD branches from). Success needs every step
right, so a student with per-step accuracy p solves a K-step problem with probability ~p^K: the chance
that an untrained or partly trained student succeeds falls exponentially with K (the paper's failure
mode 2). ``expert_lookahead`` > 0 writes the expert's steps in a style the student cannot express
(failure mode 1, see ``ChainArgs``). ``easy_steps`` and ``hard_steps`` are the knobs. A solution counts as
right when its chain of states is the correct one (the chain is the verifiable answer);
``final_answers``/``rewards`` offer the looser last-token check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from methods.core.api import Benchmark, Metric
from methods.core.seeding import numpy_rng

PAD, SEP, EOS = 0, 1, 2
FIRST_STATE = 3


@dataclass
class ChainArgs:
    num_states: int = 8
    num_actions: int = 4
    easy_steps: int = 2  # easy problems have 1..easy_steps steps
    hard_steps: int = 8  # hard problems have exactly hard_steps steps
    num_train: int = 512  # RL problems (half easy, half hard), each with an expert trace
    num_test: int = 256  # per split
    num_val: int = 0  # per split; validation problems for choosing hyper-parameters (never test)
    # "slots": actions in hard_steps fixed slots (empty slots = PAD), then SEP and the start state, so
    # step j reads its action at the same relative offset in every problem: the per-step transition is
    # a local lookup the student can represent, for any K and any expert prefix. "compact": the
    # original layout (start, actions, SEP); the offset to step j's action depends on K.
    layout: str = "slots"
    # The expert's style (paper failure mode 1: traces too difficult for the student to express). 0: the
    # expert writes plain states. L > 0: the expert writes each step as one "planning" token
    # (s_j, s_{min(j+L, K)}): the current state and the state L steps ahead. The ahead part needs an
    # L-fold composition of the table in one token, which a tiny student cannot express for large L,
    # although every plain step is a one-lookup transition it can. The verifier accepts, at each step,
    # either the plain state or the expert's planning token, so the student may solve in its own style.
    expert_lookahead: int = 0


@dataclass
class ChainSplit:
    """Problems of one split: prompts (token lists), expert traces (episodes, EOS-terminated) and answers."""

    prompts: list[torch.Tensor]
    traces: list[torch.Tensor]  # expert completion: K step tokens then EOS; episode j = token j
    answers: torch.Tensor  # (n,) answer token (plain final state)
    steps: torch.Tensor  # (n,) K
    vocab_size: int
    plain: list[torch.Tensor] | None = None  # plain-state completions (K states then EOS); None: = traces

    def __len__(self) -> int:
        return len(self.prompts)


def vocab_size(args: ChainArgs) -> int:
    planning = args.num_states ** 2 if args.expert_lookahead > 0 else 0
    return FIRST_STATE + args.num_states + args.num_actions + planning


def planning_token(state: np.ndarray, ahead: np.ndarray, args: ChainArgs) -> np.ndarray:
    """The expert's one-token step (current state, state ``expert_lookahead`` steps ahead)."""
    return FIRST_STATE + args.num_states + args.num_actions + state * args.num_states + ahead


def _problems(table: np.ndarray, steps: np.ndarray, args: ChainArgs, rng: np.random.Generator,
              vocab: int) -> ChainSplit:
    """Vectorised over problems of equal K; rows of different K are built per K group."""
    n = steps.shape[0]
    prompts: list[torch.Tensor] = [torch.empty(0)] * n
    traces: list[torch.Tensor] = [torch.empty(0)] * n
    plain: list[torch.Tensor] = [torch.empty(0)] * n
    answers = np.zeros(n, dtype=np.int64)
    for k in np.unique(steps):
        idx = np.flatnonzero(steps == k)
        start = rng.integers(0, args.num_states, size=idx.size)
        actions = rng.integers(0, args.num_actions, size=(idx.size, k))
        states = np.empty((idx.size, k), dtype=np.int64)
        current = start
        for j in range(k):  # k steps of a vectorised table lookup
            current = table[actions[:, j], current]
            states[:, j] = current
        action_tokens = actions + FIRST_STATE + args.num_states
        if args.layout == "slots":
            empty = np.full((idx.size, args.hard_steps - k), PAD)
            prompt = np.concatenate([action_tokens, empty, np.full((idx.size, 1), SEP),
                                     start[:, None] + FIRST_STATE], axis=1)
        else:
            prompt = np.concatenate([start[:, None] + FIRST_STATE, action_tokens,
                                     np.full((idx.size, 1), SEP)], axis=1)
        eos = np.full((idx.size, 1), EOS)
        plain_trace = np.concatenate([states + FIRST_STATE, eos], axis=1)
        trace = plain_trace
        if args.expert_lookahead > 0:
            ahead = states[:, np.minimum(np.arange(k) + args.expert_lookahead, k - 1)]
            trace = np.concatenate([planning_token(states, ahead, args), eos], axis=1)
        for row, i in enumerate(idx):
            prompts[i], traces[i] = torch.from_numpy(prompt[row]), torch.from_numpy(trace[row])
            plain[i] = torch.from_numpy(plain_trace[row])
        answers[idx] = states[:, -1] + FIRST_STATE
    return ChainSplit(prompts, traces, torch.from_numpy(answers), torch.from_numpy(steps), vocab, plain)


def load(args: ChainArgs, seed: int) -> dict[str, ChainSplit]:
    """Splits: train (half easy, half hard, with expert traces), test_easy, test_hard (+ val_* if num_val)."""
    if args.easy_steps < 1 or args.hard_steps <= args.easy_steps:
        raise ValueError(f"need 1 <= easy_steps < hard_steps, got {args.easy_steps}, {args.hard_steps}")
    if args.expert_lookahead < 0:
        raise ValueError(f"expert_lookahead must be >= 0, got {args.expert_lookahead}")
    if args.layout not in ("slots", "compact"):
        raise ValueError(f"layout must be 'slots' or 'compact', got {args.layout!r}")
    rng = numpy_rng(seed)
    # one random permutation of the states per action: the chain mixes to uniform, so a K-step answer
    # cannot be guessed from a concentrated stationary distribution
    table = rng.random((args.num_actions, args.num_states)).argsort(1)
    vocab = vocab_size(args)

    def easy(n: int) -> np.ndarray:
        return rng.integers(1, args.easy_steps + 1, size=n)

    half = args.num_train // 2
    train_steps = np.concatenate([easy(half), np.full(args.num_train - half, args.hard_steps)])
    splits = {
        "train": _problems(table, train_steps, args, rng, vocab),
        "test_easy": _problems(table, easy(args.num_test), args, rng, vocab),
        "test_hard": _problems(table, np.full(args.num_test, args.hard_steps), args, rng, vocab),
    }
    if args.num_val:  # drawn after the test splits, so adding validation leaves train and test unchanged
        splits["val_easy"] = _problems(table, easy(args.num_val), args, rng, vocab)
        splits["val_hard"] = _problems(table, np.full(args.num_val, args.hard_steps), args, rng, vocab)
    return splits


def final_answers(completions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The last token before EOS (or the last token written) of each completion; PAD when empty."""
    ends = completions == EOS
    stop = torch.where(ends.any(1), ends.float().argmax(1), lengths)
    stop = torch.minimum(stop, lengths)
    last = (stop - 1).clamp(min=0)
    answer = completions.gather(1, last[:, None]).squeeze(1)
    return torch.where(stop > 0, answer, torch.full_like(answer, PAD))


def rewards(completions: torch.Tensor, lengths: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """1 where the final answer is right, else 0 (the only signal RL gets)."""
    return (final_answers(completions, lengths) == answers).float()


def score(correct: torch.Tensor, k: int) -> dict[str, float]:
    """correct: (n, samples) bool, first column greedy, the rest sampled; pass@k = any of k samples right."""
    if correct.shape[1] < 1 + k:
        raise ValueError(f"need 1 greedy + {k} sampled answers per problem, got {correct.shape[1]} columns")
    return {"accuracy": correct[:, 0].float().mean().item(),
            f"pass_at_{k}": correct[:, 1 : 1 + k].any(1).float().mean().item()}


BENCHMARK = Benchmark(
    name="chain_reasoning",
    doc=__doc__ or "",
    data_args=ChainArgs,
    load=load,
    score=score,
    metrics=(Metric("accuracy", True, "greedy final answer right"),
             Metric("pass_at_8", True, "any of 8 sampled answers right (temperature 1)")),
)
