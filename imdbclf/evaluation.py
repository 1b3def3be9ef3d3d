"""Test metrics, plot data and example scoring for one trained model."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from imdbclf.data import Split
from imdbclf.families.base import Family
from imdbclf.progress import Progress


def classification_metrics(labels: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict:
    predicted = (proba >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    return {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "loss": float(skm.log_loss(labels, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, proba)) if len(set(labels)) == 2 else float("nan"),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def predict(family: Family, texts: Sequence[str], batch_size: int, desc: str | None = None) -> np.ndarray:
    """P(positive) for each review; with `desc`, its progress (in ~10 parts of whole batches, so that the
    batches and thus the probabilities are those of one call)."""
    if not desc or len(texts) <= batch_size:
        return family.predict_proba(texts, batch_size)
    chunk = batch_size * int(np.ceil(np.ceil(len(texts) / batch_size) / 10))
    parts = []
    with Progress(len(texts), desc, "review") as progress:
        for start in range(0, len(texts), chunk):
            parts.append(np.asarray(family.predict_proba(texts[start : start + chunk], batch_size)))
            progress.update(len(parts[-1]))
    return np.concatenate(parts)


def timed_predict(family: Family, texts: Sequence[str], batch_size: int,
                  desc: str | None = None) -> tuple[np.ndarray, float]:
    """Probabilities and inference throughput in reviews/second (after one warm-up batch)."""
    family.predict_proba(texts[:batch_size], batch_size)
    started = time.perf_counter()
    proba = predict(family, texts, batch_size, desc)
    return proba, len(texts) / max(time.perf_counter() - started, 1e-9)


def roc_points(labels: np.ndarray, proba: np.ndarray, max_points: int = 200) -> list[dict]:
    fpr, tpr, thresholds = skm.roc_curve(labels, proba)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).round().astype(int))
    return [{"fpr": float(fpr[i]), "tpr": float(tpr[i]), "threshold": float(min(thresholds[i], 1.0))} for i in keep]


def summarize_seeds(per_seed: list[dict], keys: Sequence[str]) -> dict:
    """Mean and sample standard deviation (ddof=1) of each metric over seeds; the std is None with one
    seed, where there is no spread to estimate (the report says "1 seed")."""
    out = {}
    for key in keys:
        values = np.array([m[key] for m in per_seed], dtype=float)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
    return out



# What evaluate averages over seeds (mean and std) in metrics/eval/<model>.json.
SUMMARIZED = ("accuracy", "loss", "precision", "recall", "f1", "roc_auc", "reviews_per_second", "val_accuracy",
              "val_loss")


def score_seed(family: Family, test: Split, val: Split, batch_size: int,
               seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """One saved seed on test (metrics and throughput) and on validation, where its numbers must be the ones
    retrain reported for its best epoch; returns its scores and both splits' probabilities."""
    proba, speed = timed_predict(family, test.texts, batch_size, f"seed {seed}: test")
    val_proba = predict(family, val.texts, batch_size, f"seed {seed}: validation")
    val_scores = classification_metrics(val.labels, val_proba)
    scores = {"seed": seed, **classification_metrics(test.labels, proba), "reviews_per_second": speed,
              "val_accuracy": val_scores["accuracy"], "val_loss": val_scores["loss"]}
    return scores, proba, val_proba


def predictions_table(split: Split, proba_by_seed: dict[int, np.ndarray]) -> pd.DataFrame:
    """Per review: id, movie, label and every seed's P(positive), what the report's paired tests read."""
    frame = pd.DataFrame({"id": split.ids, "movie": split.movies, "label": split.labels})
    for seed, proba in proba_by_seed.items():
        frame[f"proba_seed_{seed}"] = proba
    return frame
