"""Aggregate run directories into the leaderboard and judge the papers' claims against it.

    python -m methods.core.leaderboard results/runs/smoke --out results/scales/smoke

A run counts only if its ``manifest.json`` (written last, atomically) exists and its
``metrics.parquet`` passes the schema; anything else is reported by path and left out, never averaged.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import math
import operator
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from methods.core.tables import CLAIMS, LEADERBOARD, METRIC_ROWS, TableError

GROUP = ["scale", "benchmark", "method", "variant", "split", "metric", "step"]
UNIT_SCALE = {"percent": 100.0}  # our metrics are fractions; claims in percent are compared x100


def read_runs(run_dirs: Iterable[str | Path]) -> tuple[pd.DataFrame, list[str]]:
    """Concatenate valid runs' metric rows; return (rows, problems), one problem line per bad run."""
    frames, problems = [], []
    for run_dir in map(Path, run_dirs):
        if not (run_dir / "manifest.json").is_file():
            problems.append(f"{run_dir}: incomplete run (no manifest.json), left out")
            continue
        try:
            json.loads((run_dir / "manifest.json").read_text())
            df = METRIC_ROWS.read(run_dir / "metrics.parquet")
        except (TableError, json.JSONDecodeError) as err:
            problems.append(f"{run_dir}: {err}; left out")
            continue
        frames.append(df.assign(run=str(run_dir)))
    if not frames:
        return pd.DataFrame(columns=[*METRIC_ROWS.columns, "run"]), problems
    return pd.concat(frames, ignore_index=True), problems


def find_runs(root: str | Path) -> list[Path]:
    """Every seed directory under a runs root (complete or not: read_runs judges)."""
    return sorted(p for p in Path(root).glob("**/seed*") if p.is_dir() and not p.name.endswith(".tmp"))


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, sample std, and the Student-t confidence interval of the mean (NaN with one seed)."""
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """One leaderboard row per (scale, benchmark, method, variant, split, metric, step)."""
    out = []
    keyed = rows.assign(step=rows["step"].astype("float64").fillna(-1.0))
    for key, group in keyed.groupby(GROUP, sort=True):
        mean, std, lo, hi = mean_ci(group["value"].to_numpy(dtype=float))
        record = dict(zip(GROUP, key, strict=True))
        record["step"] = None if record["step"] == -1.0 else record["step"]
        out.append({**record, "higher_is_better": bool(group["higher_is_better"].iloc[0]), "mean": mean,
                    "std": std, "ci_low": lo, "ci_high": hi, "n": len(group),
                    "seeds": ",".join(str(s) for s in sorted(group["seed"])),
                    "runs": ",".join(sorted(group["run"]))})
    if not out:
        return LEADERBOARD.validate(pd.DataFrame(columns=list(LEADERBOARD.columns)))
    return LEADERBOARD.validate(pd.DataFrame(out))


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le,
        ast.USub: operator.neg}


Curve = list[tuple[float, float]]  # (step, value), steps ascending


def steps_to_reach(curve: Curve, threshold: float, higher_is_better: bool = True) -> float:
    """First step at which a curve reaches ``threshold``; ``inf`` when it never does (censored)."""
    for step, value in curve:
        if (value >= threshold) if higher_is_better else (value <= threshold):
            return step
    return math.inf


def evaluate_check(expression: str, values: dict[str, float], curves: dict[str, Curve] | None = None,
                   higher_is_better: bool = True) -> bool:
    """Evaluate a claim check such as ``cat_1l >= 0.9 and cat_1l - attention_1l >= 0.3``.

    Names are our variant ids (their mean on the claim's benchmark, metric and split); only
    arithmetic, comparisons, and/or/not, and ``max``/``min`` are allowed. Inside ``max``/``min`` a quoted
    glob stands for every variant it matches, so a swept grid reads as its best setting:
    ``max('cat_1l_d_model64_*') >= 0.9`` (zoology reports the best learning rate). A missing name, or a
    glob matching nothing, raises KeyError.

    With ``curves`` (a variant's step rows on the same benchmark, metric and split), two more functions
    compare training speed: ``steps_to(bread, sft_grpo)`` is the first step at which bread's curve reaches
    sft_grpo's final value (``inf`` if never) and ``last_step(sft_grpo)`` the last step of its curve, so
    "BREAD reaches SFT+GRPO's accuracy in fewer steps" reads ``steps_to(bread, sft_grpo) < last_step(sft_grpo)``.
    """

    def curve_of(node: ast.expr) -> Curve:
        if not isinstance(node, ast.Name):
            raise ValueError("steps_to/last_step take a variant id as their first argument")
        if curves is None or node.id not in curves:
            raise KeyError(f"{node.id} (curve)")
        return curves[node.id]

    def spread(args: list[ast.expr]) -> list[float]:
        out: list[float] = []
        for arg in args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                matched = [v for k, v in sorted(values.items()) if fnmatch.fnmatchcase(k, arg.value)]
                if not matched:
                    raise KeyError(arg.value)
                out += matched
            else:
                out.append(ev(arg))
        return out

    def ev(node: ast.AST) -> float | bool:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not ev(node.operand)
        if isinstance(node, ast.BoolOp):
            results = [ev(v) for v in node.values]
            return all(results) if isinstance(node.op, ast.And) else any(results)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("max", "min")
                and node.args and not node.keywords):
            return (max if node.func.id == "max" else min)(spread(node.args))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            if node.func.id == "steps_to" and len(node.args) == 2:
                return steps_to_reach(curve_of(node.args[0]), ev(node.args[1]), higher_is_better)
            if node.func.id == "last_step" and len(node.args) == 1:
                curve = curve_of(node.args[0])
                return curve[-1][0] if curve else math.inf
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = ev(comp)
                if type(op) not in _OPS or not _OPS[type(op)](left, right):
                    return False
                left = right
            return True
        raise ValueError(f"unsupported expression in claim check: {ast.dump(node)}")

    return bool(ev(ast.parse(expression, mode="eval")))


VERDICTS = ("holds", "inconclusive", "fails", "not measured")


def _curves(rows: pd.DataFrame, column: str) -> dict[str, Curve]:
    return {variant: sorted(zip(g["step"].astype(float), g[column].astype(float), strict=True))
            for variant, g in rows.groupby("variant")}


def seeds_holding(check: str, rows: pd.DataFrame, higher_is_better: bool = True) -> tuple[int, int]:
    """(seeds where ``check`` holds, seeds where it could be evaluated) over the replicates of ``rows``.

    Replicates pair across variants (seed k of every variant saw the same data), so the check is
    evaluated on each seed's values as it is on the means.
    """
    held = total = 0
    for _, per_seed in rows.groupby("seed"):
        finals = per_seed[per_seed["step"].isna()]
        try:
            ok = evaluate_check(check, dict(zip(finals["variant"], finals["value"], strict=True)),
                                _curves(per_seed[per_seed["step"].notna()], "value"), higher_is_better)
        except KeyError:
            continue
        held, total = held + int(ok), total + 1
    return held, total


def judge_claims(board: pd.DataFrame, claims_csv: str | Path, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each claim of the papers, per scale we measured, with our value and a verdict.

    The verdict is *holds* when the check is true on the means and on every seed, *inconclusive* when it is
    true on the means but not on every seed (the effect is within seed-to-seed noise), *fails* when it is
    false on the means, *not measured* when a variant it names was not run. ``rows`` (the raw metric rows)
    give the per-seed count; without them the verdict uses the means alone.
    """
    claims = pd.read_csv(claims_csv, dtype=str, keep_default_na=False)
    finals = board[board["step"].isna()]
    raw = rows is not None
    scales = sorted(finals["scale"].unique()) or ["none"]
    out = []
    for scale in scales:
        for claim in claims.to_dict("records"):
            row = {"scale": scale, "method": claim["method"], "benchmark": claim["benchmark"],
                   "setting": claim["setting"], "metric": claim["metric"], "variant": claim["variant"],
                   "paper_value": float(claim["value"]), "unit": claim["unit"], "source": claim["source"],
                   "our_benchmark": claim["our_benchmark"] or None, "our_metric": claim["our_metric"] or None,
                   "our_split": (claim.get("our_split") or "test") if claim["our_benchmark"] else None,
                   "our_variant": claim["our_variant"] or None, "our_value": None, "our_ci_low": None,
                   "our_ci_high": None, "our_n": None, "check": claim["check"] or None, "seeds_holding": None,
                   "verdict": "not measured", "detail": None}
            split = claim.get("our_split") or "test"
            ours = finals[(finals["scale"] == scale) & (finals["benchmark"] == claim["our_benchmark"])
                          & (finals["metric"] == claim["our_metric"]) & (finals["split"] == split)]
            means = dict(zip(ours["variant"], ours["mean"], strict=True))
            better = bool(ours["higher_is_better"].iloc[0]) if len(ours) else True
            curve_rows = board[(board["scale"] == scale) & (board["benchmark"] == claim["our_benchmark"])
                               & (board["metric"] == claim["our_metric"]) & (board["split"] == split)
                               & board["step"].notna()]
            curves = _curves(curve_rows, "mean")
            mine = ours[ours["variant"] == claim["our_variant"]]
            if len(mine):
                factor = UNIT_SCALE.get(claim["unit"], 1.0)
                first = mine.iloc[0]
                row.update(our_value=first["mean"] * factor, our_ci_low=first["ci_low"] * factor,
                           our_ci_high=first["ci_high"] * factor, our_n=float(first["n"]))
            if claim["check"] and means:
                try:
                    holds = evaluate_check(claim["check"], means, curves, better)
                except KeyError as missing:
                    row["detail"] = f"variant {missing} not in this run"
                else:
                    row["verdict"] = "holds" if holds else "fails"
                    row["detail"] = f"split {split}: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(means.items()))
                    if raw:
                        mine_raw = rows[(rows["scale"] == scale) & (rows["benchmark"] == claim["our_benchmark"])
                                        & (rows["metric"] == claim["our_metric"]) & (rows["split"] == split)]
                        held, total = seeds_holding(claim["check"], mine_raw, better)
                        if total:
                            row["seeds_holding"] = f"{held}/{total}"
                            if holds and held < total:
                                row["verdict"] = "inconclusive"
            out.append(row)
    return CLAIMS.validate(pd.DataFrame(out, columns=list(CLAIMS.columns)))


def merge_scales(paths: Iterable[str | Path], schema=LEADERBOARD) -> pd.DataFrame:
    """Concatenate per-scale tables (each validated on read)."""
    frames = [schema.read(p) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return schema.validate(pd.DataFrame(columns=list(schema.columns)))
    return schema.validate(pd.concat(frames, ignore_index=True))


def summarise(run_dirs: Iterable[str | Path], claims_csv: str | Path, out_dir: str | Path) -> list[str]:
    """Write leaderboard.parquet and claims.parquet for one scale; return the problems found."""
    out_dir = Path(out_dir)
    rows, problems = read_runs(run_dirs)
    for line in problems:
        print(f"leaderboard: {line}", file=sys.stderr)
    board = LEADERBOARD.write(aggregate(rows), out_dir / "leaderboard.parquet")
    CLAIMS.write(judge_claims(board, claims_csv, rows), out_dir / "claims.parquet")
    return problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_root", help="e.g. results/runs/smoke")
    parser.add_argument("--claims", default="results/paper_claims.csv")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    summarise(find_runs(args.runs_root), args.claims, args.out)


if __name__ == "__main__":
    main()
