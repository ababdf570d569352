"""ProsQA-style graph search (Coconut, arXiv 2412.06769; as used by CoT2, arXiv 2505.23648, Table 2).

Two disjoint random trees of ``depth`` levels are listed as shuffled edges (parent child). The question
names the root of one tree and two candidates at the last level, one in each tree; the answer is the
candidate the root reaches. Example (depth 3; nodes are random ids; edges shown as pairs)::

    prompt  <PAD>.. 7 2  7 9  2 4  9 11  5 3  3 8 | ? 7 4 8
    trace   2 | 4 ... a path root -> answer: level 1 node, level 2 node (depth - 1 steps)
    answer  4  (7 -> 2 -> 4; node 8 hangs under root 5)

CSFT target at step t: uniform over the root's tree at level t (the BFS frontier: every trace that
starts at the root passes through one of them). The discrete trace is the path to the answer, which a
model must pick before it has seen where each branch leads; continuous tokens keep the whole frontier.

``edge_tokens: true`` writes each edge as one token ``E(parent, child)`` (a vocabulary of N^2 edge tokens
after the N node tokens) instead of two adjacent node tokens. The search is the same; what changes is
that a model trained from scratch need not first learn to bind each child to the token before it (the
role a sentence parser plays for ProsQA's "Every X is a Y" in a pretrained LM). Measured at smoke size
(depth 2, 16 nodes, 2 layers d=64, seed 0; methods/cot2/README.md): with node pairs the root's child was
never found (step accuracy ~0.5 after 6k steps: the two inner nodes, not the root's), with edge tokens
the first CSFT step was right on 0.96 of test examples after 3 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.reasoning import METRICS, ReasoningSplit, score
from methods.core.api import Benchmark
from methods.core.seeding import numpy_rng

SPECIALS = ["<PAD>", "<BOS>", "?", "<YES>", "<NO>"]


@dataclass
class GraphArgs:
    depth: int = 3  # levels below the root; the chain of thought has depth - 1 steps
    max_branch: int = 2  # children per inner node, drawn from 1..max_branch
    num_node_tokens: int = 40  # node ids are drawn from this many tokens without replacement
    num_train: int = 4000
    num_test: int = 1000
    edge_tokens: bool = False  # one token per edge (see the module docstring) instead of a node pair


def _check(args: GraphArgs) -> None:
    if args.depth < 2:
        raise ValueError(f"graph task: depth must be >= 2 (one CoT step at least), got {args.depth}")
    if args.max_branch < 1:
        raise ValueError(f"graph task: max_branch must be >= 1, got {args.max_branch}")
    most = 2 * sum(args.max_branch**level for level in range(args.depth + 1))
    if args.num_node_tokens < most:
        raise ValueError(f"graph task: num_node_tokens {args.num_node_tokens} < {most} nodes two full trees "
                         f"of depth {args.depth} can have; raise it or lower depth/max_branch")


def _tree(args: GraphArgs, rng: np.random.Generator) -> tuple[list[list[int]], list[int]]:
    """Levels of local node indices and each node's parent (-1 for the root)."""
    levels, parent = [[0]], [-1]
    for _ in range(args.depth):
        nxt = []
        for node in levels[-1]:
            for _ in range(int(rng.integers(1, args.max_branch + 1))):
                parent.append(node)
                nxt.append(len(parent) - 1)
        levels.append(nxt)
    return levels, parent


def edge_token(parent: int, child: int, num_nodes: int) -> int:
    """The token of edge parent -> child (both node tokens) in the ``edge_tokens`` layout: after the nodes."""
    offset = len(SPECIALS)
    return offset + num_nodes + (parent - offset) * num_nodes + (child - offset)


def build_graphs(args: GraphArgs, n: int, rng: np.random.Generator, question: str) -> ReasoningSplit:
    """``question``: "choice" (ProsQA: which candidate is reachable) or "yesno" (ProntoQA: is X reachable)."""
    _check(args)
    offset, num_nodes = len(SPECIALS), args.num_node_tokens
    vocab = [*SPECIALS, *(f"N{i}" for i in range(num_nodes))]
    if args.edge_tokens:  # in the order ``edge_token`` numbers them
        vocab += [f"E{p}>{c}" for p in range(num_nodes) for c in range(num_nodes)]
    max_edges = 2 * (sum(args.max_branch**level for level in range(args.depth + 1)) - 1)
    query_len = 4 if question == "choice" else 3
    steps = args.depth - 1
    edge_width = 1 if args.edge_tokens else 2
    prompt = np.zeros((n, 1 + edge_width * max_edges + query_len), dtype=np.int64)
    targets = np.zeros((n, steps, len(vocab)), dtype=np.float32)
    trace = np.zeros((n, steps), dtype=np.int64)
    answer = np.zeros(n, dtype=np.int64)
    for i in range(n):  # generation only (a few ms per thousand); training is batched
        (levels_a, parent_a), (levels_b, parent_b) = _tree(args, rng), _tree(args, rng)
        size_a = len(parent_a)
        ids = rng.permutation(args.num_node_tokens)[: size_a + len(parent_b)] + offset
        edges = [(ids[p], ids[c]) for c, p in enumerate(parent_a) if p >= 0]
        edges += [(ids[size_a + p], ids[size_a + c]) for c, p in enumerate(parent_b) if p >= 0]
        edges = [edges[j] for j in rng.permutation(len(edges))]
        if args.edge_tokens:
            flat = [edge_token(p, c, num_nodes) for p, c in edges]
        else:
            flat = [t for e in edges for t in e]
        goal = int(rng.choice(levels_a[-1]))
        decoy = size_a + int(rng.choice(levels_b[-1]))
        path, node = [], goal
        while node >= 0:
            path.append(node)
            node = parent_a[node]
        path = path[::-1]  # root, level 1, ..., goal
        if question == "choice":
            pair = [ids[goal], ids[decoy]] if rng.random() < 0.5 else [ids[decoy], ids[goal]]
            query = [SPECIALS.index("?"), ids[0], *pair]
            answer[i] = ids[goal]
        else:
            reachable = rng.random() < 0.5
            query = [SPECIALS.index("?"), ids[0], ids[goal] if reachable else ids[decoy]]
            answer[i] = SPECIALS.index("<YES>") if reachable else SPECIALS.index("<NO>")
        row = [SPECIALS.index("<BOS>"), *flat, *query]
        prompt[i, -len(row):] = row  # left-padded with <PAD>
        for t in range(steps):
            frontier = ids[levels_a[t + 1]]
            targets[i, t, frontier] = 1.0 / len(frontier)
            trace[i, t] = ids[path[t + 1]]
    return ReasoningSplit(torch.from_numpy(prompt), torch.from_numpy(targets), torch.from_numpy(trace),
                          torch.from_numpy(answer), vocab)


def load(args: GraphArgs, seed: int) -> dict[str, ReasoningSplit]:
    rng = numpy_rng(seed)
    return {"train": build_graphs(args, args.num_train, rng, "choice"),
            "test": build_graphs(args, args.num_test, rng, "choice")}


BENCHMARK = Benchmark(
    name="prosqa",
    doc=__doc__ or "",
    data_args=GraphArgs,
    load=load,
    score=score,
    metrics=METRICS,
)
