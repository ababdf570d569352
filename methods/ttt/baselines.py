"""Classical baselines for few-row tables, tuned by cross-validation on the training rows only."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _folds(y: np.ndarray, max_folds: int, seed: int) -> StratifiedKFold | None:
    smallest = min(np.bincount(y)[np.bincount(y) > 0])
    folds = min(max_folds, int(smallest))
    return StratifiedKFold(folds, shuffle=True, random_state=seed) if folds >= 2 else None


def _fit(estimator, grid: dict, x: np.ndarray, y: np.ndarray, max_folds: int, seed: int):
    if len(np.unique(y)) < 2:
        raise ValueError("a training set with a single class cannot train a classifier")
    folds = _folds(y, max_folds, seed)
    if folds is None:  # too few rows per class to cross-validate: the grid's first (default) setting
        return estimator.set_params(**{k: v[0] for k, v in grid.items()}).fit(x, y)
    return GridSearchCV(estimator, grid, cv=folds, scoring="neg_log_loss", n_jobs=1).fit(x, y).best_estimator_


def full_proba(model, x: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((len(x), num_classes))
    out[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(x)
    return out


def logistic_regression_proba(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, num_classes: int,
                              c_grid: list[float], max_folds: int, seed: int) -> np.ndarray:
    """Standardised L2 logistic regression, C chosen by stratified CV log-loss."""
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model = _fit(pipe, {"logisticregression__C": c_grid}, x, y, max_folds, seed)
    return full_proba(model, x_test, num_classes)


def hist_gradient_boosting_proba(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, num_classes: int,
                                 leaf_grid: list[int], lr_grid: list[float], max_iter: int, max_folds: int,
                                 seed: int) -> np.ndarray:
    """sklearn's HistGradientBoosting; min_samples_leaf and learning rate chosen by stratified CV log-loss.

    The default min_samples_leaf=20 cannot split a 16-row table, so the grid holds small leaves.
    """
    hgb = HistGradientBoostingClassifier(max_iter=max_iter, early_stopping=False, random_state=seed)
    model = _fit(hgb, {"min_samples_leaf": leaf_grid, "learning_rate": lr_grid}, x, y, max_folds, seed)
    return full_proba(model, x_test, num_classes)
