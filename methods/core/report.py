"""Plots and an HTML table of one scale's leaderboard, for ``snakemake --report`` and the README.

    python -m methods.core.report RUN_DIR... --claims results/paper_claims.csv --out results/scales/smoke
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from methods.core.atomic import atomic_path, write_text  # noqa: E402
from methods.core.leaderboard import summarise  # noqa: E402
from methods.core.tables import CLAIMS, LEADERBOARD  # noqa: E402


def headline_metric(board: pd.DataFrame) -> str:
    finals = board[board["step"].isna()]
    metrics = list(dict.fromkeys(finals["metric"]))
    return "accuracy" if "accuracy" in metrics else metrics[0]


def plot_benchmark(board: pd.DataFrame, benchmark: str, path: str | Path) -> None:
    """Bars (mean with 95% CI) of the headline metric per split; curves where the metric has steps."""
    rows = board[board["benchmark"] == benchmark]
    metric = headline_metric(rows)
    finals = rows[rows["step"].isna() & (rows["metric"] == metric)]
    curves = rows[rows["step"].notna() & (rows["metric"] == metric)]
    ncols = 2 if len(curves) else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 3.6), squeeze=False)
    ax = axes[0][0]
    splits = list(dict.fromkeys(finals["split"]))
    variants = list(dict.fromkeys(finals["method"] + "/" + finals["variant"]))
    width = 0.8 / max(1, len(variants))
    for i, name in enumerate(variants):
        sel = finals[finals["method"] + "/" + finals["variant"] == name].set_index("split").reindex(splits)
        err = [(sel["mean"] - sel["ci_low"]).fillna(0), (sel["ci_high"] - sel["mean"]).fillna(0)]
        ax.bar([j + i * width for j in range(len(splits))], sel["mean"], width, yerr=err, capsize=3, label=name)
    ax.set_xticks([j + width * (len(variants) - 1) / 2 for j in range(len(splits))], splits)
    ax.set_title(f"{benchmark}: {metric} (mean, 95% CI)")
    ax.legend(fontsize=7)
    if len(curves):
        ax2 = axes[0][1]
        for (variant, split), g in curves.groupby(["variant", "split"]):
            ax2.plot(g["step"], g["mean"], marker=".", label=f"{variant} [{split}]")
            ax2.fill_between(g["step"], g["ci_low"], g["ci_high"], alpha=0.2)
        ax2.set_xlabel("step")
        ax2.set_title(f"{benchmark}: {metric} over steps")
        ax2.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def html_table(board: pd.DataFrame, claims: pd.DataFrame) -> str:
    finals = board[board["step"].isna()].drop(columns=["runs", "step"])
    parts = ["<h2>Leaderboard (final values; mean and 95% CI over seeds)</h2>",
             finals.to_html(index=False, float_format=lambda v: f"{v:.4g}"),
             "<h2>Paper claims</h2>",
             claims[claims["check"].notna()].to_html(index=False, float_format=lambda v: f"{v:.4g}")]
    return "<html><body>" + "\n".join(parts) + "</body></html>"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--claims", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--benchmarks", nargs="*", default=[], help="benchmarks to plot (one PNG each)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    summarise(args.runs, args.claims, out)
    board, claims = LEADERBOARD.read(out / "leaderboard.parquet"), CLAIMS.read(out / "claims.parquet")
    for benchmark in args.benchmarks:
        plot_benchmark(board, benchmark, out / "plots" / f"{benchmark}.png")
    write_text(out / "leaderboard.html", html.unescape(html_table(board, claims)))


if __name__ == "__main__":
    main()
