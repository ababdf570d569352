"""Table logic of the leaderboard site, free of Streamlit so that it is unit-tested directly."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from methods.core.leaderboard import VERDICTS
from methods.core.show import paper_value_text
from methods.core.tables import CLAIMS, LEADERBOARD, TableError


class NoResults(RuntimeError):
    """Nothing to show yet; the message says how to produce results."""


def results_dir() -> Path:
    return Path(os.environ.get("OCTOBENCH_RESULTS", "results"))


def load_tables(root: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The leaderboard and claims tables, schema-checked; NoResults or TableError otherwise."""
    root = Path(root) if root is not None else results_dir()
    board_path, claims_path = root / "leaderboard.parquet", root / "claims.parquet"
    if not board_path.exists():
        raise NoResults(f"No leaderboard at {board_path}. Run the benchmark first: `make bench` "
                        "(or `snakemake --cores all`).")
    board = LEADERBOARD.read(board_path)
    if board.empty:
        raise NoResults(f"The leaderboard at {board_path} has no rows yet.")
    claims = CLAIMS.read(claims_path) if claims_path.exists() else CLAIMS.validate(
        pd.DataFrame(columns=list(CLAIMS.columns)))
    return board, claims


def choices(board: pd.DataFrame, **fixed: str) -> pd.DataFrame:
    out = board
    for column, value in fixed.items():
        out = out[out[column] == value]
    return out


def format_ci(mean: float, low: float | None, high: float | None) -> str:
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {(high - low) / 2:.2g}"


def leaderboard_view(board: pd.DataFrame, claims: pd.DataFrame, scale: str, benchmark: str, metric: str,
                     split: str) -> pd.DataFrame:
    """Final values of one (scale, benchmark, metric, split): a row per method/variant, best first."""
    rows = choices(board, scale=scale, benchmark=benchmark, metric=metric, split=split)
    rows = rows[rows["step"].isna()]
    if rows.empty:
        return pd.DataFrame(columns=["method", "variant", "mean ± 95% CI", "mean", "ci_low", "ci_high", "n",
                                     "seeds", "paper", "verdict"])
    relevant = claims[(claims["scale"] == scale) & (claims["our_benchmark"] == benchmark)
                      & (claims["our_metric"] == metric) & (claims["our_split"] == split)]
    paper = {(r.method.lower(), r.our_variant): r for r in relevant.itertuples()}
    out = []
    for r in rows.itertuples():
        claim = paper.get((r.method.lower(), r.variant))
        out.append({
            "method": r.method, "variant": r.variant,
            "mean ± 95% CI": format_ci(r.mean, r.ci_low, r.ci_high),
            "mean": r.mean, "ci_low": r.ci_low, "ci_high": r.ci_high, "n": r.n, "seeds": r.seeds,
            "paper": None if claim is None else f"{paper_value_text(claim.paper_value, claim.unit)} ({claim.source})",
            "verdict": None if claim is None else claim.verdict,
        })
    ascending = not bool(rows["higher_is_better"].iloc[0])
    return pd.DataFrame(out).sort_values("mean", ascending=ascending, kind="stable").reset_index(drop=True)


def curves(board: pd.DataFrame, scale: str, benchmark: str, metric: str) -> pd.DataFrame:
    rows = choices(board, scale=scale, benchmark=benchmark, metric=metric)
    return rows[rows["step"].notna()].assign(series=lambda d: d["variant"] + " [" + d["split"] + "]")


def claims_view(claims: pd.DataFrame, scale: str) -> pd.DataFrame:
    """Claims we measure at this scale first (with verdicts), then those not yet measured."""
    rows = claims[claims["scale"] == scale].copy()
    rows["measured"] = rows["verdict"] != "not measured"
    cols = ["method", "benchmark", "setting", "metric", "variant", "paper_value", "unit", "our_value",
            "our_ci_low", "our_ci_high", "our_n", "verdict", "seeds_holding", "check", "detail", "source"]
    return rows.sort_values(["measured", "method"], ascending=[False, True])[cols].reset_index(drop=True)


def verdict_summary(claims: pd.DataFrame, scale: str) -> pd.DataFrame:
    """Per method: how many of its claims hold, fail or are not measured at this scale."""
    rows = claims[claims["scale"] == scale]
    counts = rows.groupby(["method", "verdict"]).size().unstack(fill_value=0)
    for verdict in VERDICTS:
        if verdict not in counts:
            counts[verdict] = 0
    return counts[list(VERDICTS)].reset_index().rename_axis(columns=None)


def provenance(runs: str) -> list[dict]:
    """The manifests behind one leaderboard row (one per seed)."""
    out = []
    for run in filter(None, runs.split(",")):
        path = Path(run) / "manifest.json"
        try:
            out.append({"run": run, **json.loads(path.read_text())})
        except (OSError, json.JSONDecodeError) as err:
            out.append({"run": run, "error": f"cannot read {path}: {err}"})
    return out


__all__ = ["NoResults", "TableError", "load_tables", "leaderboard_view", "curves", "claims_view", "verdict_summary",
           "provenance"]
