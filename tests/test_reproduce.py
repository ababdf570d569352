"""The reproduction check compares result rows exactly, ignores timing rows and names missing rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from methods.core.reproduce import compare, main


def rows(values: dict[str, float], step: float | None = None) -> pd.DataFrame:
    return pd.DataFrame([dict(scale="s", benchmark="b", method="m", variant="v", seed=0, split="test",
                              metric=metric, value=value, step=step) for metric, value in values.items()])


def test_identical_rows_and_nan_values_compare_equal():
    stored = rows({"accuracy": 0.5, "loss": np.nan})
    assert compare(stored, stored.copy()).empty


def test_a_changed_value_in_the_last_bit_is_reported():
    stored = rows({"accuracy": 0.5})
    diff = compare(stored, rows({"accuracy": np.nextafter(0.5, 1.0)}))
    assert diff["metric"].tolist() == ["accuracy"]


def test_timing_rows_are_not_compared_but_missing_result_rows_are():
    stored = rows({"accuracy": 0.5, "train_cpu_seconds": 3.0, "perplexity": 7.0})
    diff = compare(stored, rows({"accuracy": 0.5, "train_cpu_seconds": 4.0}))
    assert diff["metric"].tolist() == ["perplexity"]


def test_a_directory_that_is_not_a_finished_run_exits_2(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "not a finished run" in capsys.readouterr().out
