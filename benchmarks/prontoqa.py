"""ProntoQA-style reachability (arXiv 2210.01240; as used by CoT2, arXiv 2505.23648, Table 2).

The same two-tree worlds as ``benchmarks.prosqa`` (a concept ontology whose rules "every A is B" are
the edges, plus a distractor ontology), but the question names the entity's concept and one concept at
the last level and asks whether it follows: the answer is <YES> or <NO>. Example (depth 3)::

    prompt  <PAD>.. 7 2  7 9  2 4  9 11  5 3  3 8 | ? 7 8
    trace   2 | 4 ... a path from the root down to the last level (to the queried node when reachable)
    answer  <NO>   (8 hangs under root 5)

CSFT targets are the root's frontiers level by level, as in ProsQA.
"""

from __future__ import annotations

from benchmarks.prosqa import GraphArgs, build_graphs
from benchmarks.reasoning import METRICS, ReasoningSplit, score
from methods.core.api import Benchmark
from methods.core.seeding import numpy_rng


def load(args: GraphArgs, seed: int) -> dict[str, ReasoningSplit]:
    rng = numpy_rng(seed)
    return {"train": build_graphs(args, args.num_train, rng, "yesno"),
            "test": build_graphs(args, args.num_test, rng, "yesno")}


BENCHMARK = Benchmark(
    name="prontoqa",
    doc=__doc__ or "",
    data_args=GraphArgs,
    load=load,
    score=score,
    metrics=METRICS,
)
