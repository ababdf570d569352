"""Tidy tables and their schemas, checked on every write and every read.

A run's ``metrics.parquet`` holds one measured number per row::

    scale  benchmark method variant  seed split metric   value higher_is_better step
    smoke  mqar      cat    cat_1l   0    test  accuracy 0.99  True             NaN   (final value)
    smoke  mqar      cat    cat_1l   0    test  accuracy 0.42  True             200   (curve point)

Curves are rows with a ``step``; no other file format is ever needed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from methods.core.atomic import atomic_path


class TableError(ValueError):
    """A table that does not match its schema; the message names the file and the problem."""


@dataclass(frozen=True)
class Schema:
    name: str
    columns: dict[str, str]  # column -> kind: "str", "int", "float", "bool", "float?" (nullable), "str?"
    key: tuple[str, ...] = ()

    def validate(self, df: pd.DataFrame, where: str = "") -> pd.DataFrame:
        """Return `df` with columns in schema order and canonical dtypes, or raise TableError."""
        at = f" in {where}" if where else ""
        missing = [c for c in self.columns if c not in df.columns]
        extra = [c for c in df.columns if c not in self.columns]
        if missing or extra:
            raise TableError(f"{self.name} table{at}: missing columns {missing}, unexpected {extra}")
        out = df[list(self.columns)].copy()
        for col, kind in self.columns.items():
            nullable = kind.endswith("?")
            base = kind.rstrip("?")
            series = out[col]
            if not nullable and series.isna().any():
                raise TableError(f"{self.name} table{at}: column '{col}' has empty values")
            try:
                if base == "str":
                    out[col] = series.astype("string") if nullable else series.astype(str)
                elif base == "int":
                    out[col] = series.astype("int64")
                elif base == "float":
                    out[col] = pd.to_numeric(series, errors="raise").astype("float64")
                elif base == "bool":
                    if not series.map(lambda v: isinstance(v, bool) or v in (0, 1)).all():
                        raise ValueError("non-boolean values")
                    out[col] = series.astype(bool)
                elif base == "object":
                    pass
                else:  # pragma: no cover - schema bug
                    raise AssertionError(kind)
            except (TypeError, ValueError) as err:
                raise TableError(f"{self.name} table{at}: column '{col}' is not {base}: {err}") from err
        if self.key and out.duplicated(list(self.key)).any():
            dup = out[out.duplicated(list(self.key), keep=False)].head(3).to_dict("records")
            raise TableError(f"{self.name} table{at}: duplicate rows for key {self.key}: {dup}")
        return out

    def write(self, df: pd.DataFrame, path: str | os.PathLike) -> pd.DataFrame:
        df = self.validate(df, where=str(path))
        with atomic_path(path) as tmp:
            df.to_parquet(tmp, index=False)
        return df

    def read(self, path: str | os.PathLike) -> pd.DataFrame:
        path = Path(path)
        try:
            df = pd.read_parquet(path)
        except Exception as err:  # noqa: BLE001 - any unreadable file is a table error
            raise TableError(f"{self.name} table {path} cannot be read: {err}") from err
        return self.validate(df, where=str(path))


METRIC_ROWS = Schema(
    "metrics",
    {
        "scale": "str",
        "benchmark": "str",
        "method": "str",
        "variant": "str",
        "seed": "int",
        "split": "str",
        "metric": "str",
        "value": "float",
        "higher_is_better": "bool",
        "step": "float?",
    },
    key=("scale", "benchmark", "method", "variant", "seed", "split", "metric", "step"),
)

LEADERBOARD = Schema(
    "leaderboard",
    {
        "scale": "str",
        "benchmark": "str",
        "method": "str",
        "variant": "str",
        "split": "str",
        "metric": "str",
        "step": "float?",
        "higher_is_better": "bool",
        "mean": "float",
        "std": "float?",
        "ci_low": "float?",
        "ci_high": "float?",
        "n": "int",
        "seeds": "str",
        "runs": "str",
    },
    key=("scale", "benchmark", "method", "variant", "split", "metric", "step"),
)

CLAIMS = Schema(
    "claims",
    {
        "scale": "str",
        "method": "str",
        "benchmark": "str",
        "setting": "str",
        "metric": "str",
        "variant": "str",
        "paper_value": "float",
        "unit": "str",
        "source": "str",
        "our_benchmark": "str?",
        "our_metric": "str?",
        "our_split": "str?",
        "our_variant": "str?",
        "our_value": "float?",
        "our_ci_low": "float?",
        "our_ci_high": "float?",
        "our_n": "float?",
        "check": "str?",
        "seeds_holding": "str?",
        "verdict": "str",
        "detail": "str?",
    },
)


def finite(value: float) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))
