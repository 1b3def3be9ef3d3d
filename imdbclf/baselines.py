"""The guesses every model must beat, from the training split's class counts alone: always the largest
class (the majority guess), and random draws in the training shares (the class-prior guess). On a
64/9/27 table the majority guess scores accuracy 0.64 with no model at all; a model that cannot beat it
has learnt nothing worth serving, and the report and its stage say so."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imdbclf import selection, significance
from imdbclf.settings.pipeline import ReportParams

GUESSES = {"majority": "always the largest training class", "prior": "random draws in the training shares"}


def majority(train_counts: np.ndarray) -> int:
    return int(np.argmax(train_counts))


def guesses(n: int, train_counts: np.ndarray, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each guess's predicted classes and (n, K) probabilities (the training shares, every text alike)."""
    shares = np.asarray(train_counts, dtype=np.float64) / np.sum(train_counts)
    proba = np.tile(shares, (n, 1))
    drawn = np.random.default_rng(seed).choice(len(shares), size=n, p=shares)
    return {"majority": (np.full(n, majority(train_counts), dtype=np.int64), proba), "prior": (drawn, proba)}


def lead_metric(metric: str) -> str:
    """What a lead over the majority guess is measured in: the selection metric, but ROC-AUC (the guesses
    rank nothing) as balanced accuracy."""
    return "balanced_accuracy" if metric == "roc_auc" else metric


def lead_over_majority(labels: np.ndarray, predicted: np.ndarray, train_counts: np.ndarray, metric: str,
                       r: ReportParams, clusters: np.ndarray | None = None) -> dict:
    """A model's lead over the majority guess in the selection metric on the same texts, its CI (paired,
    by group where there are groups) and whether it beats the guess: the whole interval above 0."""
    k, measured = len(train_counts), lead_metric(metric)
    guess = np.full(len(labels), majority(train_counts), dtype=np.int64)
    diff, low, high = significance.metric_lead(labels, predicted, guess, k, measured, r.bootstrap_samples,
                                               r.confidence, r.seed, clusters)
    return {"metric": measured, "diff": diff, "ci_low": low, "ci_high": high, "beats": bool(low > 0),
            "majority_score": float(selection.confusion_scores(_confusion_counts(labels, guess, k), measured))}


def _confusion_counts(labels: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)


def warning(model: str, lead: dict, classes: Sequence[str], train_counts: np.ndarray) -> str:
    """The one line a stage prints for a model that does not beat the majority guess, with what to try."""
    name = selection.NAMES[lead["metric"]]
    largest = " ".join(str(classes[majority(train_counts)]).split())[:80]  # a class name from the data: one line
    return (f"warning: {model} does not beat always guessing '{largest}' on test "
            f"{name} (lead {lead['diff']:+.4f}, CI [{lead['ci_low']:+.4f}, {lead['ci_high']:+.4f}]): try "
            f"{model}.tune.grid.class_weight [balanced], more epochs or a smaller batch for few texts, or "
            "more labelled texts")
