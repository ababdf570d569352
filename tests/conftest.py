"""Shared fixtures: a tiny config (seconds on CPU) and synthetic result rows."""

from __future__ import annotations

import copy
import os

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

# The paper-profile job tests run on the device these name (default: CPU, float32), so that the very same
# tests exercise the GPU path on a CUDA machine:
#   OCTOBENCH_TEST_DEVICE=cuda OCTOBENCH_TEST_DTYPE=bfloat16 pytest tests/test_*_paper.py tests/test_ssa_hf.py
JOB_DEVICE = os.environ.get("OCTOBENCH_TEST_DEVICE", "cpu")
JOB_DTYPE = os.environ.get("OCTOBENCH_TEST_DTYPE", "float32")

TINY = {
    "scale": "tiny",
    "seed": 0,
    "replicates": 2,
    "device": "cpu",
    "dtype": "float32",
    "threads": 1,
    "resources": {"gpu": 0, "mem_mb": 1000, "runtime": 5},
    "methods": {
        "cat": {
            "benchmarks": {
                "mqar": {
                    "data": {"vocab_size": 32, "seq_len": 24, "num_kv_pairs": 2, "num_train": 256,
                             "num_test": 32, "length_multipliers": [1, 2]},
                    "args": {"d_model": 16, "steps": 6, "batch_size": 8},
                    "variants": {"attention_1l": {"family": "attention", "n_layers": 1},
                                 "cat_1l": {"family": "cat", "n_layers": 1}},
                }
            }
        }
    },
}


@pytest.fixture
def tiny_config() -> dict:
    return copy.deepcopy(TINY)


def write_results(root, with_curves: bool = True):
    """A small results folder (runs -> summary -> merged tables) for dashboard tests."""
    import json

    import pandas as pd

    from methods.core.leaderboard import summarise
    from methods.core.merge import main as merge
    from methods.core.tables import METRIC_ROWS

    claims = root / "paper_claims.csv"
    pd.DataFrame([dict(method="CAT", benchmark="associative_recall", setting="1 layer", metric="solves",
                       variant="cat_1layer", value=1, unit="boolean", source="arXiv 2407.05591",
                       confidence="abstract", our_benchmark="mqar", our_metric="accuracy", our_split="test",
                       our_variant="cat_1l", check="cat_1l - attention_1l >= 0.3")]).to_csv(claims, index=False)
    runs = []
    for variant, acc in (("cat_1l", 0.97), ("attention_1l", 0.15)):
        for seed in range(3):
            run = root / "runs" / "demo" / "mqar" / "cat" / variant / f"seed{seed}"
            run.mkdir(parents=True)
            rows = [dict(scale="demo", benchmark="mqar", method="cat", variant=variant, seed=seed, split="test",
                         metric="accuracy", value=acc + 0.01 * seed, higher_is_better=True, step=None)]
            if with_curves:
                rows += [dict(rows[0], value=acc * s / 3, step=float(s)) for s in (1, 2, 3)]
            METRIC_ROWS.write(pd.DataFrame(rows), run / "metrics.parquet")
            (run / "manifest.json").write_text(json.dumps({"seed": seed, "git_sha": "abc123"}))
            runs.append(run)
    summarise(runs, claims, root / "scales" / "demo")
    merge(["--scales-root", str(root / "scales"), "--out-board", str(root / "leaderboard.parquet"),
           "--out-claims", str(root / "claims.parquet")])
    return root
