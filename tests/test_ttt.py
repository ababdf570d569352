"""TTT (arXiv 2503.11842): the rank-one test-time step, the regression benchmark, the TabPFN path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.icl_regression import ICLRegressionArgs
from benchmarks.icl_regression import load as load_regression
from benchmarks.tabular_icl import TabularArgs, load_source, make_task, stratified_order
from benchmarks.tabular_icl import score as tabular_score
from methods.ttt.linear_attention import predict, pretrain, ttt_predict, ttt_weight
from methods.ttt.tabular import matched_size_factor, required_size, sample_size_reduction


def test_ttt_step_is_the_rank_one_gradient_step_of_proposition_3_1():
    g = torch.Generator().manual_seed(0)
    d, n, k = 5, 12, 7
    weight = torch.randn(d, d, generator=g)
    cx, cy = torch.randn(n, d, generator=g), torch.randn(n, generator=g)
    kx, ky = torch.randn(k, d, generator=g), torch.randn(k, generator=g)
    w = weight.clone().requires_grad_(True)
    u = cx.T @ cy / n
    loss = ((ky - kx @ w @ u) ** 2).mean()
    loss.backward()
    expected = weight - 0.1 * w.grad
    updated = ttt_weight(weight, cx, cy, kx, ky, 0.1)
    assert torch.allclose(updated, expected, atol=1e-5)
    singular = torch.linalg.svdvals((updated - weight).double())
    assert singular[1] < 1e-4 * singular[0]  # rank one


def test_batched_ttt_predictions_equal_predictions_of_the_updated_matrix():
    g = torch.Generator().manual_seed(1)
    d, n, k, q = 4, 10, 6, 3
    weight = torch.randn(d, d, generator=g)
    cx, cy = torch.randn(2, n, d, generator=g), torch.randn(2, n, generator=g)
    kx, ky = torch.randn(2, k, d, generator=g), torch.randn(2, k, generator=g)
    qx = torch.randn(2, q, d, generator=g)
    batched = ttt_predict(weight, cx, cy, kx, ky, qx, torch.tensor([0.0, 0.05]))
    assert torch.allclose(batched[0], predict(weight, cx, cy, qx), atol=1e-5)
    for t in range(2):
        w_tt = ttt_weight(weight, cx[t], cy[t], kx[t], ky[t], 0.05)
        assert torch.allclose(batched[1, t], qx[t] @ w_tt @ (cx[t].T @ cy[t] / n), atol=1e-4)


def test_regression_splits_are_deterministic_and_shift_moves_tasks_off_the_pretraining_subspace():
    args = ICLRegressionArgs(dim=6, pretrain_rank=2, context_lengths=[4, 8], ks=[2, 4], num_val_tasks=20,
                             num_test_tasks=30, alignments={"aligned": 1.0, "shifted": 0.0}, context_length=8)
    a, b = load_regression(args, 3), load_regression(args, 3)
    assert torch.equal(a.splits["test_shifted"].query_y, b.splits["test_shifted"].query_y)
    assert a.splits["test_aligned"].beta[:, 2:].abs().max() == 0
    assert a.splits["test_shifted"].beta[:, :2].abs().max() == 0
    assert a.splits["val_aligned"].context_x.shape == (20, 8, 6)


def test_one_ttt_step_lowers_mse_on_shifted_tasks_when_k_is_large():
    args = ICLRegressionArgs(dim=6, pretrain_rank=2, context_length=12, context_lengths=[12], ks=[64],
                             num_val_tasks=200, num_test_tasks=200, alignments={"shifted": 0.0})
    data = load_regression(args, 0)
    g = torch.Generator().manual_seed(0)
    weight = pretrain(lambda b: data.pretraining_batch(b, 12, 4, g), 6, 150, 128, 0.02)
    tasks = data.splits["test_shifted"]
    preds = ttt_predict(weight, tasks.context_x, tasks.context_y, tasks.ttt_x, tasks.ttt_y, tasks.query_x,
                        torch.tensor([0.0, 0.01]))
    mse = ((preds - tasks.query_y) ** 2).mean(dim=(1, 2))
    assert mse[1] < 0.8 * mse[0]


def test_table_files_load_from_csv_and_arff_like_openml_tables(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    y = np.where(x[:, 0] > 0, "yes", "no")
    csv = tmp_path / "table.csv"
    rows = "\n".join(f"{r[0]},{r[1]},{r[2]},{lab}" for r, lab in zip(x, y, strict=True))
    csv.write_text("a,b,c,label\n" + rows)
    arff = tmp_path / "table.arff"
    arff.write_text("@RELATION t\n@ATTRIBUTE a NUMERIC\n@ATTRIBUTE b NUMERIC\n@ATTRIBUTE c NUMERIC\n"
                    "@ATTRIBUTE label {yes,no}\n@DATA\n"
                    + rows)
    args = TabularArgs(train_sizes=[4, 8], headline_size=4, max_test=20)
    for path in (csv, arff):
        xs, ys = load_source(f"file:{path}", args)
        task = make_task(f"file:{path}", xs, ys, args, np.random.default_rng(1))
        assert task.name == "table" and task.num_classes == 2
        assert len(task.y_test) == 20 and set(task.prefix(4)[1]) == {0, 1}
    with pytest.raises(ValueError, match="min_rows"):
        make_task("file:x", xs, ys, TabularArgs(train_sizes=[4], headline_size=4, min_rows=1250), rng)


def test_stratified_order_keeps_every_class_in_short_prefixes():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    order = stratified_order(y, np.random.default_rng(0))
    assert sorted(order) == list(range(100))
    assert set(y[order[:6]]) == {0, 1, 2}


def test_tabular_score_reports_accuracy_and_log_loss():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    scores = tabular_score(proba, np.array([0, 1, 1]), 2)
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["log_loss"] > 0


def test_matched_size_factor_interpolates_the_reference_curve_in_log_rows():
    sizes, ref = [8, 16, 32, 64], [0.5, 0.6, 0.7, 0.8]
    assert matched_size_factor(sizes, ref, 0.7, 8) == pytest.approx(4.0)
    assert matched_size_factor(sizes, ref, 0.65, 16) == pytest.approx(np.sqrt(2 * 32 * 16) / 16 / np.sqrt(2))
    assert matched_size_factor(sizes, ref, 0.95, 16) == 4.0  # beyond the curve: a lower bound
    assert matched_size_factor(sizes, ref, 0.4, 16) == 0.5


def test_required_size_reads_the_running_best_curve_and_is_infinite_when_never_reached():
    sizes = [8, 16, 32, 64]
    assert required_size(sizes, [0.5, 0.7, 0.6, 0.8], 0.7) == pytest.approx(16.0)  # running max, not 32
    assert required_size(sizes, [0.5, 0.6, 0.7, 0.8], 0.4) == 8.0
    assert required_size(sizes, [0.5, 0.6, 0.7, 0.8], 0.9) == float("inf")


def test_sample_size_reduction_matches_the_no_ttt_accuracy_at_the_largest_size():
    sizes, base = [8, 16, 32, 64], [0.5, 0.6, 0.7, 0.8]
    assert sample_size_reduction(sizes, base, [0.6, 0.7, 0.8, 0.85]) == pytest.approx(2.0)  # 64 vs 32 rows
    assert sample_size_reduction(sizes, base, [0.8, 0.8, 0.8, 0.8]) == pytest.approx(8.0)  # bound: 64 / 8
    assert sample_size_reduction(sizes, base, base) == pytest.approx(1.0)
    assert sample_size_reduction(sizes, base, [0.5, 0.6, 0.7, 0.75]) == pytest.approx(1.0)  # never reached
    # a no-TTT curve that plateaus early needs fewer rows than the largest size: no free factor from it
    assert sample_size_reduction(sizes, [0.5, 0.8, 0.8, 0.8], [0.8, 0.8, 0.8, 0.8]) == pytest.approx(2.0)
