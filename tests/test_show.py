"""The README's claim table is generated from the claims table, never typed."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from methods.core.show import END, START, claims_markdown, update_block


def _claims() -> pd.DataFrame:
    base = {"scale": "smoke", "method": "CAT", "benchmark": "mqar", "setting": "one layer", "metric": "accuracy",
            "variant": "cat", "paper_value": 1.0, "unit": "boolean", "source": "Fig. 2", "our_benchmark": "mqar",
            "our_metric": "accuracy", "our_split": "test", "our_variant": "cat_1l", "our_value": 0.98,
            "our_ci_low": 0.97, "our_ci_high": 0.99, "our_n": 3.0, "check": "cat_1l >= 0.9", "seeds_holding": "3/3",
            "verdict": "holds", "detail": ""}
    unmeasured = {**base, "setting": "paper grid", "our_value": math.nan, "verdict": "not measured"}
    failing = {**base, "setting": "4x length", "unit": "percent", "paper_value": 95.0, "verdict": "fails"}
    return pd.DataFrame([base, unmeasured, failing])


def test_markdown_lists_measured_claims_with_ci_and_marks_failures() -> None:
    text = claims_markdown(_claims())
    assert "of 2 measured claims, 1 hold on the means and on every seed" in text
    assert "1 are not measured" in text
    assert "0.98 [0.97, 0.99] (3) | 3/3 |" in text
    assert "paper grid" not in text
    assert "| 95 percent |" in text and "**fails**" in text


def test_update_replaces_only_the_results_block(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n{START}\nold numbers\n{END}\ntail\n")
    update_block(readme, "new numbers\n")
    assert readme.read_text() == f"# title\n{START}\nnew numbers\n{END}\ntail\n"


def test_update_without_markers_is_a_clear_error(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="no '<!-- results:start -->'"):
        update_block(readme, "x")
