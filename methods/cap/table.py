"""Print CAP's leaderboard rows as a markdown table (mean ± 95% CI half-width over seeds) for the README.

    python -m methods.cap.table --scale smoke --benchmark lt_gmm
"""

from __future__ import annotations

import argparse

import pandas as pd

from methods.core.tables import LEADERBOARD

METRICS = ("balanced_error", "worst_class_error", "std_class_error", "weighted_error")


def markdown(board: pd.DataFrame, scale: str, benchmark: str, split: str = "test") -> str:
    rows = board[(board["method"] == "cap") & (board["scale"] == scale) & (board["benchmark"] == benchmark)
                 & (board["split"] == split) & board["step"].isna() & board["metric"].isin(METRICS)]
    if rows.empty:
        return f"(no rows for cap / {scale} / {benchmark})"
    cells = rows.assign(cell=[f"{m:.4f} ± {(hi - lo) / 2:.4f}" for m, lo, hi in
                              zip(rows["mean"], rows["ci_low"], rows["ci_high"], strict=True)])
    table = cells.pivot(index="variant", columns="metric", values="cell")
    table = table[[m for m in METRICS if m in table.columns]]
    order = rows[rows["metric"] == "balanced_error"].sort_values("mean")["variant"]
    table = table.loc[[v for v in order if v in table.index]]
    n = int(rows["n"].min())
    header = "| variant | " + " | ".join(table.columns) + " |"
    lines = [header, "|" + "---|" * (len(table.columns) + 1)]
    lines += ["| " + v + " | " + " | ".join(table.loc[v]) + " |" for v in table.index]
    return "\n".join(lines) + f"\n\n({split} split, mean ± 95% CI half-width over n={n} seeds)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--board", default="results/leaderboard.parquet")
    parser.add_argument("--scale", default="smoke")
    parser.add_argument("--benchmark", default="lt_gmm")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    print(markdown(LEADERBOARD.read(args.board), args.scale, args.benchmark, args.split))


if __name__ == "__main__":
    main()
