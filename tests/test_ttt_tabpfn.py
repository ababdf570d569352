"""The TabPFN track goes through tabpfn's own checkpoint format, loader and classifier, never the hub."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.ttt.prior import sample_tasks
from methods.ttt.tabpfn_model import (
    build_small_model,
    classifier_proba,
    finetune_on_context,
    forward_proba,
    identity_inference_config,
    load_model,
    save_checkpoint,
    select_ttt_on_tasks,
    select_ttt_setting,
    stratified_holdout,
    ttt_proba,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model, config = build_small_model(emsize=8, nlayers=1, nhead=2, max_num_classes=4, init_std=0.02, seed=0)
    return save_checkpoint(model, config, tmp_path_factory.mktemp("ckpt") / "tabpfn-v2-test-classifier.ckpt",
                           identity_inference_config())


def _table(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def test_saved_checkpoint_loads_through_tabpfn_model_path_and_predicts_probabilities(checkpoint):
    x, y = _table()
    proba = classifier_proba(checkpoint, x[:20], y[:20], x[20:], 3)
    assert proba.shape == (20, 3)
    assert np.allclose(proba.sum(1), 1.0) and np.all(proba[:, 2] == 0)


def test_missing_checkpoint_is_an_error_not_a_download(tmp_path):
    x, y = _table()
    with pytest.raises(FileNotFoundError, match="never lets tabpfn"):
        classifier_proba(tmp_path / "absent.ckpt", x[:20], y[:20], x[20:], 2)


def test_finetuning_on_the_context_changes_weights_and_ttt_predicts_through_model_path(checkpoint):
    x, y = _table(1)
    model = load_model(checkpoint)
    before = [p.detach().clone() for p in model.parameters()]
    losses = finetune_on_context(model, x[:20], y[:20], steps=3, lr=1e-2, query_fraction=0.3,
                                 splits_per_step=2, generator=torch.Generator().manual_seed(0))
    assert len(losses) == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    proba = ttt_proba(checkpoint, x[:20], y[:20], x[20:], 2, steps=2, lr=1e-2, query_fraction=0.3,
                      splits_per_step=2, generator=torch.Generator().manual_seed(0))
    assert proba.shape == (20, 2) and np.allclose(proba.sum(1), 1.0)


def test_prior_tasks_have_tabpfn_layout_and_the_asked_classes():
    batch = sample_tasks(torch.Generator().manual_seed(0), batch=3, rows=50, features=4, classes=3)
    assert batch.x.shape == (50, 3, 4) and batch.y.shape == (50, 3)
    assert set(batch.y.unique().tolist()) <= {0.0, 1.0, 2.0}


def test_float32_classifier_equals_the_forward_that_ttt_trains(checkpoint):
    x, y = _table(2)
    model = load_model(checkpoint)
    direct = forward_proba(model, x[:20], y[:20], x[20:], 2)
    through_tabpfn = classifier_proba(checkpoint, x[:20], y[:20], x[20:], 2, "cpu", identity_inference_config())
    assert np.allclose(direct, through_tabpfn, atol=1e-5)


def test_ttt_setting_is_chosen_on_the_context_and_zero_steps_is_the_model_without_ttt(checkpoint):
    x, y = _table(3)
    setting = select_ttt_setting(checkpoint, x[:24], y[:24], 2, lr_grid=[1e-2], step_grid=[2, 4],
                                 query_fraction=0.3, splits_per_step=2, val_fraction=0.25,
                                 generator=torch.Generator().manual_seed(0))
    assert setting.steps in (0, 2, 4) and np.isfinite(setting.val_loss)
    assert (setting.lr == 0.0) == (setting.steps == 0)
    inference = identity_inference_config()
    no_ttt = ttt_proba(checkpoint, x[:20], y[:20], x[20:], 2, steps=0, lr=1e-2, query_fraction=0.3,
                       splits_per_step=2, generator=torch.Generator().manual_seed(0), inference_config=inference)
    assert np.allclose(no_ttt, classifier_proba(checkpoint, x[:20], y[:20], x[20:], 2, "cpu", inference))
    tiny = select_ttt_setting(checkpoint, x[:4], y[:4], 2, lr_grid=[1e-2], step_grid=[2], query_fraction=0.3,
                              splits_per_step=2, val_fraction=0.25, generator=torch.Generator().manual_seed(0))
    assert tiny.steps == 0  # three rows left: too few to split for TTT, so no TTT


def test_setting_chosen_on_generated_tasks_scores_every_grid_point_and_prefers_fewer_steps_on_ties(checkpoint):
    tasks = []
    for seed in (4, 5):
        x, y = _table(seed)
        tasks.append((x[:16], y[:16], x[16:], y[16:]))
    setting = select_ttt_on_tasks(checkpoint, tasks, lr_grid=[1e-2], step_grid=[2], query_fraction=0.3,
                                  splits_per_step=2, generator=torch.Generator().manual_seed(0))
    assert setting.steps in (0, 2) and np.isfinite(setting.val_loss)
    frozen = select_ttt_on_tasks(checkpoint, tasks, lr_grid=[0.0], step_grid=[2], query_fraction=0.3,
                                 splits_per_step=2, generator=torch.Generator().manual_seed(0))
    assert frozen.steps == 0  # lr 0 changes nothing: a tie, so no TTT


def test_stratified_holdout_splits_the_context_disjointly_and_keeps_every_class_on_both_sides():
    y = np.array([0] * 12 + [1] * 8 + [2] * 4)
    fit, val = stratified_holdout(y, 0.25, torch.Generator().manual_seed(0))
    assert len(val) == 6 and sorted(np.concatenate([fit, val]).tolist()) == list(range(24))
    assert set(y[val]) == {0, 1, 2} and set(y[fit]) == {0, 1, 2}
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_holdout(y, 1.0, torch.Generator())


def test_pooled_selection_uses_only_context_rows_and_sets_one_setting_per_size(checkpoint):
    from types import SimpleNamespace

    from benchmarks.tabular_icl import TabularTask
    from methods.ttt.tabular import TabPFNTTTArgs, TTTPredictor

    tasks = {}
    for seed in (6, 7):
        x, y = _table(seed)
        poisoned = np.full((5, 3), np.nan, dtype=np.float32)  # test rows: any use would make a loss NaN
        tasks[f"t{seed}"] = TabularTask(f"t{seed}", x, y, poisoned, np.zeros(5, dtype=np.int64), 2)
    args = TabPFNTTTArgs(selection="pooled", lr_grid=[1e-2], step_grid=[2])
    logs: list[str] = []
    ctx = SimpleNamespace(args=args, seed=0, device="cpu", log=logs.append,
                          data_args=SimpleNamespace(train_sizes=[8, 16]))
    predictor = TTTPredictor(ctx, checkpoint, identity_inference_config())
    predictor.select_pooled(tasks)
    assert set(predictor.per_size) == {8, 16}
    assert all(steps in (0, 2) for _, steps in predictor.per_size.values())
    assert len(logs) == 2 and all("nan" not in line for line in logs)
