"""The leaderboard site: its table logic, and the app itself through Streamlit's AppTest."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.data import claims_view, leaderboard_view, load_tables, provenance, verdict_summary
from tests.conftest import write_results

APP = "../dashboard/app.py"


def test_view_ranks_variants_and_shows_paper_value_and_verdict(tmp_path):
    board, claims = load_tables(write_results(tmp_path))
    view = leaderboard_view(board, claims, "demo", "mqar", "accuracy", "test")
    assert view["variant"].tolist() == ["cat_1l", "attention_1l"]
    assert view.loc[0, "verdict"] == "holds" and "arXiv 2407.05591" in view.loc[0, "paper"]
    assert view.loc[0, "mean ± 95% CI"].startswith("0.98 ±")
    assert claims_view(claims, "demo").loc[0, "verdict"] == "holds"
    other_split = leaderboard_view(board, claims.assign(our_split="test_4x"), "demo", "mqar", "accuracy", "test")
    assert other_split["verdict"].isna().all()  # a claim about another split is not shown on this one


def test_verdict_summary_counts_each_methods_claims(tmp_path):
    _, claims = load_tables(write_results(tmp_path))
    summary = verdict_summary(claims, "demo")
    assert list(summary.columns) == ["method", "holds", "inconclusive", "fails", "not measured"]
    assert summary.set_index("method").loc["CAT", "holds"] == (claims["verdict"] == "holds").sum()


def test_provenance_reads_each_seeds_manifest(tmp_path):
    board, _ = load_tables(write_results(tmp_path))
    manifests = provenance(board.loc[0, "runs"])
    assert len(manifests) == 3 and all(m["git_sha"] == "abc123" for m in manifests)


def run_app(monkeypatch, results):
    monkeypatch.setenv("OCTOBENCH_RESULTS", str(results))
    return AppTest.from_file(APP, default_timeout=60).run()


def test_app_shows_table_plot_curves_and_claims(tmp_path, monkeypatch):
    app = run_app(monkeypatch, write_results(tmp_path))
    assert not app.exception
    table = app.dataframe[0].value
    assert set(table["variant"]) == {"cat_1l", "attention_1l"}
    assert [app.selectbox(key=k).value for k in ("scale", "benchmark", "metric", "split")] == [
        "demo", "mqar", "accuracy", "test"]
    assert app.selectbox(key="provenance_row").value == "cat/cat_1l"
    assert any(h.value == "Curves" for h in app.subheader)
    assert app.dataframe[-1].value.loc[0, "verdict"] == "holds"
    assert app.dataframe[1].value.loc[0, "holds"] >= 1


def test_app_says_how_to_get_results_when_there_are_none(tmp_path, monkeypatch):
    app = run_app(monkeypatch, tmp_path)
    assert "Run the benchmark first" in app.info[0].value


def test_app_reports_an_invalid_table_instead_of_crashing(tmp_path, monkeypatch):
    (tmp_path / "leaderboard.parquet").write_text("broken")
    app = run_app(monkeypatch, tmp_path)
    assert not app.exception
    assert "invalid" in app.error[0].value


@pytest.mark.parametrize("metric", ["accuracy"])
def test_switching_split_or_metric_keeps_the_app_working(tmp_path, monkeypatch, metric):
    app = run_app(monkeypatch, write_results(tmp_path))
    app.selectbox(key="metric").set_value(metric).run()
    assert not app.exception
