import pandas as pd
import pytest

from methods.core.atomic import atomic_dir
from methods.core.tables import METRIC_ROWS, TableError


def row(**kw):
    base = dict(scale="s", benchmark="b", method="m", variant="v", seed=0, split="test", metric="accuracy",
                value=0.5, higher_is_better=True, step=None)
    return {**base, **kw}


def test_metric_rows_round_trip_through_parquet(tmp_path):
    df = pd.DataFrame([row(), row(step=10.0, value=0.2)])
    METRIC_ROWS.write(df, tmp_path / "m.parquet")
    back = METRIC_ROWS.read(tmp_path / "m.parquet")
    assert back["value"].tolist() == [0.5, 0.2]
    assert back["step"].isna().tolist() == [True, False]


def test_schema_names_missing_and_bad_columns():
    with pytest.raises(TableError, match="missing columns \\['value'\\]"):
        METRIC_ROWS.validate(pd.DataFrame([row()]).drop(columns="value"))
    with pytest.raises(TableError, match="'value' is not float"):
        METRIC_ROWS.validate(pd.DataFrame([row(value="high")]))
    with pytest.raises(TableError, match="duplicate rows"):
        METRIC_ROWS.validate(pd.DataFrame([row(), row()]))


def test_unreadable_file_is_a_table_error(tmp_path):
    bad = tmp_path / "m.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(TableError, match="cannot be read"):
        METRIC_ROWS.read(bad)


def test_atomic_dir_leaves_nothing_when_the_job_dies(tmp_path):
    target = tmp_path / "seed0"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "metrics.parquet").write_text("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
