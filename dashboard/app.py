"""octobench leaderboard:  streamlit run dashboard/app.py

Reads results/leaderboard.parquet and results/claims.parquet (OCTOBENCH_RESULTS sets another folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: import the repo's code

import altair as alt  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard.data import (  # noqa: E402
    NoResults,
    TableError,
    claims_view,
    curves,
    leaderboard_view,
    load_tables,
    provenance,
    verdict_summary,
)

st.set_page_config(page_title="octobench leaderboard", layout="wide")
st.title("octobench leaderboard")

try:
    board, claims = load_tables()
except NoResults as err:
    st.info(str(err))
    st.stop()
except TableError as err:
    st.error(f"The results table is invalid: {err}")
    st.stop()

with st.sidebar:
    scale = st.selectbox("Scale", sorted(board["scale"].unique()), key="scale")
    at_scale = board[board["scale"] == scale]
    benchmark = st.selectbox("Benchmark", sorted(at_scale["benchmark"].unique()), key="benchmark")
    at_bench = at_scale[at_scale["benchmark"] == benchmark]
    metrics = sorted(at_bench["metric"].unique())
    metric = st.selectbox("Metric", metrics, index=metrics.index("accuracy") if "accuracy" in metrics else 0,
                          key="metric")
    splits = sorted(at_bench[at_bench["metric"] == metric]["split"].unique())
    split = st.selectbox("Split", splits, index=splits.index("test") if "test" in splits else 0, key="split")

view = leaderboard_view(board, claims, scale, benchmark, metric, split)
st.subheader(f"{benchmark} · {metric} · {split}")
st.caption("Mean over seeds with a 95% Student-t confidence interval; click a column header to sort.")
st.dataframe(view.drop(columns=["ci_low", "ci_high"]), hide_index=True, width="stretch")

if not view.empty:
    bars = alt.Chart(view).mark_bar().encode(
        x=alt.X("variant:N", sort="-y"), y=alt.Y("mean:Q", title=f"{metric} (mean, 95% CI)"),
        color=alt.Color("variant:N", legend=None),
        tooltip=["method", "variant", "mean ± 95% CI", "n"])
    errors = alt.Chart(view).mark_errorbar().encode(x=alt.X("variant:N", sort="-y"), y=alt.Y("ci_low:Q", title=""),
                                                   y2="ci_high:Q")
    st.altair_chart(bars + errors, width="stretch")

curve = curves(board, scale, benchmark, metric)
if not curve.empty:
    st.subheader("Curves")
    line = alt.Chart(curve).mark_line(point=True).encode(
        x=alt.X("step:Q"), y=alt.Y("mean:Q", title=metric), color="series:N",
        tooltip=["variant", "split", "step", "mean", "n"])
    band = alt.Chart(curve).mark_area(opacity=0.2).encode(x="step:Q", y="ci_low:Q", y2="ci_high:Q", color="series:N")
    st.altair_chart(band + line, width="stretch")

st.subheader("Provenance")
if not view.empty:
    labels = [f"{r.method}/{r.variant}" for r in view.itertuples()]
    chosen = st.selectbox("Row", labels, key="provenance_row")
    method, variant = chosen.split("/", 1)
    row = board[(board["scale"] == scale) & (board["benchmark"] == benchmark) & (board["metric"] == metric)
                & (board["split"] == split) & board["step"].isna() & (board["method"] == method)
                & (board["variant"] == variant)].iloc[0]
    with st.expander(f"manifests of {chosen} ({row['n']} seeds)"):
        for manifest in provenance(row["runs"]):
            st.json(manifest, expanded=False)

st.subheader("Paper claims")
st.caption("Each claim's check is an expression over our variants' means. *holds*: true on the means and on "
           "every seed (seeds are paired: seed k of every variant saw the same data); *inconclusive*: true on the "
           "means but not on every seed; *fails*: false on the means. Counts per method:")
st.dataframe(verdict_summary(claims, scale), hide_index=True, key="verdicts")
st.dataframe(claims_view(claims, scale), hide_index=True, width="stretch")
