"""Print the leaderboard's final test values and the claim verdicts in the terminal."""

from __future__ import annotations

import argparse

import pandas as pd

from methods.core.tables import CLAIMS, LEADERBOARD


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", default="results")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    board = LEADERBOARD.read(f"{args.results}/leaderboard.parquet")
    claims = CLAIMS.read(f"{args.results}/claims.parquet")
    finals = board[board["step"].isna() & (board["split"] == args.split)]
    table = finals.assign(ci=(finals["ci_high"] - finals["ci_low"]) / 2)[
        ["scale", "benchmark", "method", "variant", "metric", "mean", "ci", "n"]]
    with pd.option_context("display.max_rows", 400, "display.width", 160, "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))
        judged = claims[claims["verdict"] != "not measured"]
        print(f"\nclaims: {len(judged)} measured, {(judged['verdict'] == 'holds').sum()} hold")
        print(judged[["scale", "method", "variant", "metric", "paper_value", "unit", "our_value", "verdict",
                      "check"]].to_string(index=False))


if __name__ == "__main__":
    main()
