"""Classification metrics with masks for unknown labels."""

from __future__ import annotations

import numpy as np


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    mask = y_true >= 0
    return float(np.mean(y_true[mask] == y_pred[mask])) if mask.any() else float("nan")


def uar(y_true: np.ndarray, y_pred: np.ndarray, classes: list[int] | None = None) -> float:
    """Unweighted average recall over ``classes`` (default: the classes present)."""
    mask = y_true >= 0
    y_true, y_pred = y_true[mask], y_pred[mask]
    classes = sorted(set(y_true.tolist())) if classes is None else classes
    recalls = [float(np.mean(y_pred[y_true == c] == c)) for c in classes if (y_true == c).any()]
    return float(np.mean(recalls)) if recalls else float("nan")


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> list[list[int]]:
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    for t, p in zip(y_true, y_pred):
        if t >= 0:
            matrix[t, p] += 1
    return matrix.tolist()
