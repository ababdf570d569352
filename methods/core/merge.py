"""Merge every scale's summary under results/scales/ into the tables the dashboard reads."""

from __future__ import annotations

import argparse
from pathlib import Path

from methods.core.leaderboard import merge_scales
from methods.core.tables import CLAIMS, LEADERBOARD


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales-root", default="results/scales")
    parser.add_argument("--out-board", default="results/leaderboard.parquet")
    parser.add_argument("--out-claims", default="results/claims.parquet")
    args = parser.parse_args(argv)
    root = Path(args.scales_root)
    LEADERBOARD.write(merge_scales(sorted(root.glob("*/leaderboard.parquet"))), args.out_board)
    CLAIMS.write(merge_scales(sorted(root.glob("*/claims.parquet")), CLAIMS), args.out_claims)
    print(f"merged scales: {', '.join(sorted(p.parent.name for p in root.glob('*/leaderboard.parquet')))}")


if __name__ == "__main__":
    main()
