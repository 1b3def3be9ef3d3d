"""Test metrics, plot data and example scoring for one trained model."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from imdbclf.data import BINARY, Split
from imdbclf.families.base import Family, predicted_labels
from imdbclf.progress import Progress


def classification_metrics(labels: np.ndarray, proba: np.ndarray, classes: Sequence[str] = BINARY) -> dict:
    """Of an (n, K) probability matrix. Two classes: precision, recall and F1 of the second (positive)
    class, ROC-AUC and a tn/fp/fn/tp confusion matrix, as for IMDB; K classes: their macro averages,
    one-vs-rest ROC-AUC (macro) and the K×K matrix (rows: true class). Both: macro-F1 and per class."""
    proba, k = np.asarray(proba, dtype=np.float64), len(classes)
    predicted = predicted_labels(proba)
    binary = k == 2
    average = "binary" if binary else "macro"
    present = len(set(labels)) == k
    if binary:
        loss = skm.log_loss(labels, np.clip(proba[:, 1], 1e-7, 1 - 1e-7), labels=[0, 1])
        roc_auc = skm.roc_auc_score(labels, proba[:, 1]) if present else float("nan")
        curve_auc = roc_auc  # the area under the curve `roc_points` draws
    else:
        clipped = np.clip(proba, 1e-7, 1)  # rows of a float32 softmax sum to 1 only within 1e-7: made exact
        loss = skm.log_loss(labels, clipped / clipped.sum(axis=1, keepdims=True), labels=list(range(k)))
        roc_auc = skm.roc_auc_score(labels, proba, multi_class="ovr", average="macro",
                                    labels=list(range(k))) if present else float("nan")
        # the drawn curve is micro-averaged (every text × class one yes/no decision): its own area
        curve_auc = skm.roc_auc_score(np.eye(k, dtype=int)[labels], proba, average="micro") if present \
            else float("nan")
    matrix = skm.confusion_matrix(labels, predicted, labels=list(range(k)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(labels, predicted, labels=list(range(k)),
                                                                         zero_division=0)
    return {
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "loss": float(loss),
        "precision": float(skm.precision_score(labels, predicted, average=average, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, average=average, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, average=average, zero_division=0)),
        "macro_f1": float(skm.f1_score(labels, predicted, average="macro", zero_division=0)),
        "roc_auc": float(roc_auc),
        "roc_curve_auc": float(curve_auc),
        "confusion_matrix": ({"tn": int(matrix[0, 0]), "fp": int(matrix[0, 1]), "fn": int(matrix[1, 0]),
                              "tp": int(matrix[1, 1])} if binary
                             else {"classes": list(classes), "matrix": matrix.tolist()}),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(classes)},
    }


def predict(family: Family, texts: Sequence[str], batch_size: int, desc: str | None = None) -> np.ndarray:
    """The (n, K) class probabilities of the texts; with `desc`, its progress (in ~10 parts of whole
    batches, so that the batches and thus the probabilities are those of one call)."""
    if not desc or len(texts) <= batch_size:
        return family.predict_proba(texts, batch_size)
    chunk = batch_size * int(np.ceil(np.ceil(len(texts) / batch_size) / 10))
    parts = []
    with Progress(len(texts), desc, "text") as progress:
        for start in range(0, len(texts), chunk):
            parts.append(np.asarray(family.predict_proba(texts[start : start + chunk], batch_size)))
            progress.update(len(parts[-1]))
    return np.concatenate(parts)


def timed_predict(family: Family, texts: Sequence[str], batch_size: int,
                  desc: str | None = None) -> tuple[np.ndarray, float]:
    """Probabilities and inference throughput in texts/second (after one warm-up batch)."""
    family.predict_proba(texts[:batch_size], batch_size)
    started = time.perf_counter()
    proba = predict(family, texts, batch_size, desc)
    return proba, len(texts) / max(time.perf_counter() - started, 1e-9)


def roc_points(labels: np.ndarray, proba: np.ndarray, max_points: int = 200) -> list[dict]:
    """The ROC curve: of the positive class for two classes; for K, the micro-averaged one-vs-rest curve
    (every text × class a yes/no decision), one curve that the plots can draw beside a binary model's."""
    proba = np.asarray(proba)
    if proba.shape[1] == 2:
        fpr, tpr, thresholds = skm.roc_curve(labels, proba[:, 1])
    else:
        truth = np.eye(proba.shape[1], dtype=int)[labels]
        fpr, tpr, thresholds = skm.roc_curve(truth.ravel(), proba.ravel())
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
SUMMARIZED = ("accuracy", "loss", "precision", "recall", "f1", "macro_f1", "roc_auc", "texts_per_second",
              "val_accuracy", "val_loss")


def headline_figures(result: dict) -> dict:
    """What `dvc exp show` shows of a model: the selection metric on validation, and test accuracy, macro-F1
    and loss (the seeds' means); everything else stays in metrics/eval/<model>.json."""
    return {f"val_{result['metric']}": round(result["val_score"], 4), "accuracy": round(result["accuracy"], 4),
            "macro_f1": round(result["macro_f1"], 4), "loss": round(result["loss"], 4)}


def example_texts(test: Split, max_chars: int = 300) -> list[str]:
    """One test text of each class to show scored, when params.yaml names none: of each class's texts
    up to `max_chars` long (else all of them), the one of median length, ties to the first."""
    texts = np.asarray([str(t) for t in test.texts], dtype=object)
    lengths = np.array([len(t) for t in texts])
    picked = []
    for c in range(len(test.classes)):
        inside = np.flatnonzero(test.labels == c)
        if not len(inside):
            continue
        short = inside[lengths[inside] <= max_chars]
        pool = short if len(short) else inside
        order = pool[np.argsort(lengths[pool], kind="stable")]
        picked.append(texts[order[(len(order) - 1) // 2]])
    return picked


def score_seed(family: Family, test: Split, val: Split, batch_size: int,
               seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """One saved seed on test (metrics and throughput) and on validation, where its numbers must be the ones
    retrain reported for its best epoch; returns its scores and both splits' probabilities."""
    proba, speed = timed_predict(family, test.texts, batch_size, f"seed {seed}: test")
    val_proba = predict(family, val.texts, batch_size, f"seed {seed}: validation")
    val_scores = classification_metrics(val.labels, val_proba, test.classes)
    scores = {"seed": seed, **classification_metrics(test.labels, proba, test.classes), "texts_per_second": speed,
              "val_accuracy": val_scores["accuracy"], "val_loss": val_scores["loss"]}
    return scores, proba, val_proba


def predictions_table(split: Split, proba_by_seed: dict[int, np.ndarray]) -> pd.DataFrame:
    """Per text: id, group (IMDB: movie), label and each seed's prediction, what the report's paired tests
    read: for two classes P(positive) (`proba_seed_<s>`), for K the predicted class (`pred_seed_<s>`),
    its probability and every class's (`class<k>_seed_<s>`, what an ensemble combines)."""
    frame = pd.DataFrame({"id": split.ids, split.group_name: split.groups, "label": split.labels})
    for seed, proba in proba_by_seed.items():
        proba = np.asarray(proba)
        if proba.shape[1] == 2:
            frame[f"proba_seed_{seed}"] = proba[:, 1]
        else:
            frame[f"pred_seed_{seed}"] = predicted_labels(proba)
            frame[f"proba_seed_{seed}"] = proba.max(axis=1)
            for c in range(proba.shape[1]):
                frame[f"class{c}_seed_{seed}"] = proba[:, c]
    return frame
