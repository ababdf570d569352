"""Print the leaderboard's final test values and the claim verdicts; or write them into the README.

``python -m methods.core.show``                  terminal tables
``python -m methods.core.show --markdown``       the claim table as Markdown
``python -m methods.core.show --update README.md``  replace the block between the results markers, so the
                                                 README's numbers are generated from the leaderboard
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from methods.core.atomic import write_text
from methods.core.tables import CLAIMS, LEADERBOARD

START, END = "<!-- results:start -->", "<!-- results:end -->"


def _number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.3e}"


def paper_value_text(value: float, unit: str) -> str:
    """A paper's value for display: a number with its unit, or the kind of claim when it is a direction."""
    if unit == "boolean":
        return "claimed"  # a direction, not a number: the check column says which
    if unit == "upper_bound":
        return f"< {_number(value)}"
    return f"{_number(value)} {unit}"


def claims_markdown(claims: pd.DataFrame, scale: str = "smoke") -> str:
    """One Markdown row per claim of ``scale``: the paper's value beside ours (mean [95% CI], n seeds)."""
    rows = claims[claims["scale"] == scale]
    counts = rows["verdict"].value_counts()
    lines = [f"Scale `{scale}`: of {int((rows['verdict'] != 'not measured').sum())} measured claims, "
             f"{counts.get('holds', 0)} hold on the means and on every seed, {counts.get('inconclusive', 0)} hold "
             f"on the means only (inconclusive), {counts.get('fails', 0)} fail; {counts.get('not measured', 0)} "
             "are not measured at this scale.", "",
             "| method | claim (paper setting) | ours: variant · benchmark metric | paper | check | "
             "ours: mean [95% CI] (n) | seeds holding | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows.sort_values(["method", "verdict"], kind="stable").itertuples():
        if r.verdict == "not measured":
            continue
        ours = f"{_number(r.our_value)} [{_number(r.our_ci_low)}, {_number(r.our_ci_high)}] ({_number(r.our_n)})"
        paper = paper_value_text(r.paper_value, r.unit)
        setting = str(r.setting).replace("|", "/")
        verdict = f"**{r.verdict}**" if r.verdict in ("fails", "inconclusive") else r.verdict
        mapped = f"`{r.our_variant}` · {r.our_benchmark} {r.our_metric} ({r.our_split})"
        lines.append(f"| {r.method} | {setting} | {mapped} | {paper} | `{r.check}` | {ours} | "
                     f"{r.seeds_holding or '–'} | {verdict} |")
    return "\n".join(lines) + "\n"


def update_block(path: Path, block: str) -> None:
    """Replace the text between the results markers of ``path`` (atomically)."""
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path}: no '{START}' ... '{END}' block to update")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    write_text(path, f"{head}{START}\n{block}{END}{tail}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results")
    parser.add_argument("--split", default="test")
    parser.add_argument("--scale", default="smoke", help="scale of the Markdown claim table")
    parser.add_argument("--markdown", action="store_true", help="print the claim table as Markdown")
    parser.add_argument("--update", type=Path, help="write the claim table into this file's results block")
    args = parser.parse_args(argv)
    claims = CLAIMS.read(f"{args.results}/claims.parquet")
    if args.markdown or args.update:
        block = claims_markdown(claims, args.scale)
        if args.update:
            update_block(args.update, block)
            print(f"updated {args.update}")
        else:
            print(block, end="")
        return
    board = LEADERBOARD.read(f"{args.results}/leaderboard.parquet")
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
