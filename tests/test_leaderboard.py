import json
import math

import pandas as pd
import pytest

from methods.core.leaderboard import aggregate, evaluate_check, judge_claims, mean_ci, read_runs
from methods.core.tables import METRIC_ROWS


def write_run(path, values, variant="v", metric="accuracy"):
    path.mkdir(parents=True)
    rows = [dict(scale="s", benchmark="b", method="m", variant=variant, seed=seed, split="test", metric=metric,
                 value=v, higher_is_better=True, step=None) for seed, v in values]
    METRIC_ROWS.write(pd.DataFrame(rows), path / "metrics.parquet")
    (path / "manifest.json").write_text(json.dumps({"seed": 1}))


def test_mean_ci_uses_student_t():
    mean, std, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and std == 1.0
    assert hi - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t_{0.975, 2}
    assert math.isnan(mean_ci([1.0])[2])


def test_partial_and_malformed_runs_are_reported_and_left_out(tmp_path):
    write_run(tmp_path / "good0", [(0, 0.8)])
    write_run(tmp_path / "good1", [(1, 0.6)])
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "metrics.parquet").write_text("x")  # no manifest: killed before the end
    write_run(tmp_path / "bad", [(2, 0.1)])
    (tmp_path / "bad" / "metrics.parquet").write_text("garbage")
    rows, problems = read_runs([tmp_path / n for n in ("good0", "good1", "partial", "bad")])
    assert sorted(rows["value"]) == [0.6, 0.8]
    assert any("partial" in p and "incomplete" in p for p in problems)
    assert any("bad" in p and "cannot be read" in p for p in problems)
    board = aggregate(rows)
    assert board.loc[0, "n"] == 2 and board.loc[0, "mean"] == pytest.approx(0.7)


def test_claim_checks_are_safe_arithmetic_over_variant_means():
    assert evaluate_check("a >= 0.9 and a - b >= 0.3", {"a": 0.95, "b": 0.3})
    assert not evaluate_check("a > b", {"a": 0.1, "b": 0.3})
    with pytest.raises(KeyError):
        evaluate_check("missing > 1", {})
    with pytest.raises(ValueError):
        evaluate_check("__import__('os')", {})


def test_claim_checks_take_the_best_of_a_swept_grid_by_glob():
    grid = {"cat_1l_d64_lr1": 0.5, "cat_1l_d64_lr2": 0.97, "attention_1l_d64_lr1": 0.2}
    assert evaluate_check("max('cat_1l_d64_*') >= 0.9", grid)
    assert evaluate_check("max('cat_1l_*') - max('attention_1l_*', 0.1) >= 0.7", grid)
    assert not evaluate_check("min('cat_1l_*') >= 0.9", grid)
    with pytest.raises(KeyError):
        evaluate_check("max('mamba_*') > 0", grid)
    with pytest.raises(ValueError):
        evaluate_check("max(cat_1l_d64_lr1, key=abs) > 0", grid)


def test_claims_get_our_value_in_paper_units_and_a_verdict(tmp_path):
    write_run(tmp_path / "r1", [(0, 0.9), (1, 1.0)], variant="cat_1l")
    write_run(tmp_path / "r2", [(0, 0.2), (1, 0.3)], variant="attention_1l")
    rows, _ = read_runs([tmp_path / "r1", tmp_path / "r2"])
    claims_csv = tmp_path / "claims.csv"
    pd.DataFrame([
        dict(method="M", benchmark="x", setting="", metric="accuracy", variant="p", value=98, unit="percent",
             source="paper", confidence="table", our_benchmark="b", our_metric="accuracy", our_split="test",
             our_variant="cat_1l", check="cat_1l - attention_1l >= 0.3"),
        dict(method="M", benchmark="x", setting="", metric="speed", variant="p", value=3, unit="ratio",
             source="paper", confidence="abstract", our_benchmark="", our_metric="", our_split="",
             our_variant="", check=""),
    ]).to_csv(claims_csv, index=False)
    claims = judge_claims(aggregate(rows), claims_csv, rows)
    assert claims.loc[0, "verdict"] == "holds" and claims.loc[0, "seeds_holding"] == "2/2"
    assert claims.loc[0, "our_value"] == pytest.approx(95.0)
    assert claims.loc[1, "verdict"] == "not measured"


def test_a_claim_true_on_means_but_not_on_every_seed_is_inconclusive(tmp_path):
    write_run(tmp_path / "r1", [(0, 0.9), (1, 0.5), (2, 0.9)], variant="ssa")
    write_run(tmp_path / "r2", [(0, 0.6), (1, 0.6), (2, 0.6)], variant="attention")
    rows, _ = read_runs([tmp_path / "r1", tmp_path / "r2"])
    claims_csv = tmp_path / "claims.csv"
    pd.DataFrame([dict(method="M", benchmark="x", setting="", metric="accuracy", variant="p", value=1,
                       unit="boolean", source="paper", confidence="abstract", our_benchmark="b",
                       our_metric="accuracy", our_split="test", our_variant="ssa", check="ssa > attention")]
                 ).to_csv(claims_csv, index=False)
    claims = judge_claims(aggregate(rows), claims_csv, rows)
    assert claims.loc[0, "verdict"] == "inconclusive" and claims.loc[0, "seeds_holding"] == "2/3"
    assert judge_claims(aggregate(rows), claims_csv).loc[0, "verdict"] == "holds"  # means alone


def test_curve_checks_compare_steps_to_reach_a_final_value():
    curves = {"bread": [(10.0, 0.1), (20.0, 0.5), (30.0, 0.6)], "sft_grpo": [(10.0, 0.05), (20.0, 0.1), (30.0, 0.12)]}
    finals = {"bread": 0.6, "sft_grpo": 0.12}
    assert evaluate_check("steps_to(bread, sft_grpo) < last_step(sft_grpo)", finals, curves)
    assert evaluate_check("steps_to(bread, sft_grpo) <= 20 and steps_to(bread, sft_grpo) > 10", finals, curves)
    assert not evaluate_check("steps_to(sft_grpo, bread) < last_step(bread)", finals, curves)  # never: inf
    assert evaluate_check("steps_to(bread, 0.3) <= 10", finals, curves, higher_is_better=False)
    with pytest.raises(KeyError):
        evaluate_check("steps_to(grpo, 0.1) > 0", finals, curves)
    with pytest.raises(ValueError):
        evaluate_check("steps_to(0.5, bread) > 0", finals, curves)
