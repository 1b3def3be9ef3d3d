"""What "best" means, decided in one place: the metric that picks the best epoch, the best config and the
champion, and whether a family weighs its classes. Both follow one `auto` rule, the balance of the
training classes: accuracy and no weights when the largest class is at most `selection.balanced_ratio`
times the smallest (IMDB's 1.0), macro-F1 and `balanced` weights when it is larger (a 64/9/27 table: 7.1),
where always guessing the largest class already scores a high accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from imdbclf.settings.selection import SelectionParams

METRICS = ("accuracy", "macro_f1", "balanced_accuracy", "roc_auc")
NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "balanced_accuracy": "balanced accuracy",
         "roc_auc": "ROC-AUC"}


def imbalance(counts: np.ndarray) -> float:
    """The largest class's count over the smallest's (inf when a class is missing)."""
    counts = np.asarray(counts)
    return float(counts.max() / counts.min()) if counts.min() > 0 else float("inf")


def is_balanced(counts: np.ndarray, rule: SelectionParams) -> bool:
    return imbalance(counts) <= rule.balanced_ratio


def metric(rule: SelectionParams, counts: np.ndarray) -> str:
    """The selection metric for training classes of these counts (texts per class)."""
    if rule.metric != "auto":
        return rule.metric
    return "accuracy" if is_balanced(counts, rule) else "macro_f1"


def why(rule: SelectionParams, counts: np.ndarray) -> str:
    """The reason for the metric, in the report's words."""
    ratio = imbalance(counts)
    shares = np.asarray(counts) / max(int(np.sum(counts)), 1)
    balance = (f"the largest training class is {ratio:.1f}× the smallest (shares "
               f"{', '.join(f'{s:.0%}' for s in shares)})")
    if rule.metric != "auto":
        return f"set in params.yaml (selection.metric); {balance}"
    side = "at most" if ratio <= rule.balanced_ratio else "more than"
    return (f"selection.metric auto: {balance}, {side} selection.balanced_ratio {rule.balanced_ratio:g}, "
            + ("so the classes count as balanced" if side == "at most"
               else "so accuracy would reward always guessing the largest class"))


def class_weights(setting: str, counts: np.ndarray, rule: SelectionParams) -> dict[int, float] | None:
    """The weight of each class in the loss: `balanced` gives class c the weight n / (k · n_c), as
    scikit-learn's class_weight="balanced", so every class counts as much in total; None: unweighted."""
    if setting == "none" or (setting == "auto" and is_balanced(counts, rule)):
        return None
    n, k = int(np.sum(counts)), len(counts)
    return {c: float(n / (k * counts[c])) for c in range(k) if counts[c] > 0}


def score(name: str, labels: np.ndarray, proba: np.ndarray, predicted: np.ndarray | None = None) -> float:
    """One selection metric of an (n, K) probability matrix."""
    proba = np.asarray(proba, dtype=np.float64)
    k = proba.shape[1]
    if predicted is None:
        predicted = proba.argmax(axis=1) if k > 2 else (proba[:, 1] >= 0.5).astype(np.int64)
    if name == "accuracy":
        return float(skm.accuracy_score(labels, predicted))
    if name == "macro_f1":
        return float(skm.f1_score(labels, predicted, average="macro", labels=list(range(k)), zero_division=0))
    if name == "balanced_accuracy":
        return float(np.mean([np.mean(predicted[labels == c] == c) for c in range(k) if np.any(labels == c)]))
    if name == "roc_auc":
        if len(set(np.asarray(labels).tolist())) < k:
            return float("nan")
        return float(skm.roc_auc_score(labels, proba[:, 1]) if k == 2 else
                     skm.roc_auc_score(labels, proba, multi_class="ovr", average="macro", labels=list(range(k))))
    raise ValueError(f"unknown selection metric {name!r} (known: {', '.join(METRICS)})")


def confusion_scores(confusions: np.ndarray, name: str) -> np.ndarray:
    """The metric of each of a stack of K×K confusion matrices (weighted counts; rows: true class), as a
    bootstrap computes it for every resample at once; accuracy, macro-F1 and balanced accuracy."""
    confusions = np.asarray(confusions, dtype=np.float64)
    tp = np.diagonal(confusions, axis1=-2, axis2=-1)
    total = confusions.sum(axis=(-2, -1))
    if name == "accuracy":
        return tp.sum(axis=-1) / np.maximum(total, 1e-12)
    true, guessed = confusions.sum(axis=-1), confusions.sum(axis=-2)
    if name == "balanced_accuracy":
        present = true > 0
        return np.where(present, tp / np.maximum(true, 1e-12), 0).sum(axis=-1) / np.maximum(present.sum(-1), 1)
    if name == "macro_f1":
        denominator = true + guessed
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1e-12), 0).mean(axis=-1)
    raise ValueError(f"{name}: not a metric of the confusion matrix")


def val_key(name: str) -> str:
    """The history's key of the selection metric on validation."""
    return f"val_{name}"


def epoch_scores(labels: np.ndarray, proba: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """The validation scores a family adds to an epoch's history, beyond accuracy and loss."""
    return {val_key(n): score(n, labels, proba) for n in names if n != "accuracy"}
