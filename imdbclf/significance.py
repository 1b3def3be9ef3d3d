"""How sure are we: bootstrap intervals (per review, or per movie where reviews of one movie are
correlated), paired tests between models, and Holm's correction for testing several pairs.

Every function takes *correctness*: per review, the fraction of a model's seeds that got it right
(0 or 1 with one seed), so that all seeds count and one seed is the classic case. Resampling never
materialises samples × reviews indices: it draws counts, so memory grows with the number of
distinct values or movies, not with the number of reviews.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import sparse, stats

from imdbclf import selection

BATCH = 256  # resamples drawn at once in the cluster bootstrap: memory is BATCH × movies counts


def correctness(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per review, the fraction of seeds right; predictions is reviews (one seed) or seeds × reviews."""
    predictions = np.atleast_2d(predictions)
    return (predictions == labels[None, :]).mean(axis=0)


def _interval(means: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def bootstrap_ci(values: np.ndarray, samples: int, confidence: float, seed: int,
                 clusters: np.ndarray | None = None) -> tuple[float, float, float]:
    """Mean of per-review values and its percentile bootstrap CI.

    Without clusters, reviews are resampled independently: a resample is fully described by how
    often each distinct value is drawn (a multinomial), e.g. the three outcomes −1, 0, +1 of a
    paired comparison. With clusters (movie ids), whole movies are resampled, as reviews of the
    same movie are not independent; each resample is a vector of per-movie counts."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    if clusters is None:
        distinct, counts = np.unique(values, return_counts=True)
        draws = rng.multinomial(len(values), counts / len(values), size=samples)
        means = draws @ distinct / len(values)
    else:
        _, index = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
        sums = np.bincount(index, weights=values)
        sizes = np.bincount(index).astype(float)
        uniform = np.full(len(sums), 1 / len(sums))
        means = np.concatenate([
            (weights @ sums) / (weights @ sizes)
            for weights in (rng.multinomial(len(sums), uniform, size=min(BATCH, samples - start))
                            for start in range(0, samples, BATCH))
        ])
    low, high = _interval(means, confidence)
    return float(values.mean()), low, high


def sign_test(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[float, int, int]:
    """Two-sided exact binomial test on the reviews where one model does better than the other.
    With one seed each this is the exact McNemar test (reviews only A, or only B, gets right)."""
    a_better = int((correct_a > correct_b).sum())
    b_better = int((correct_b > correct_a).sum())
    if a_better + b_better == 0:
        return 1.0, a_better, b_better
    return float(stats.binomtest(a_better, a_better + b_better, 0.5).pvalue), a_better, b_better


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment: controls the chance of any false positive among the pairs."""
    order = np.argsort(pvalues)
    adjusted = np.empty(len(pvalues))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted.tolist()


def pairwise(correct: Mapping[str, np.ndarray], samples: int, confidence: float, seed: int) -> list[dict]:
    """Every pair of models on the same reviews: accuracy difference with a paired bootstrap CI, the
    paired exact test, and its Holm-adjusted p-value across all pairs."""
    names = list(correct)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            diff, low, high = bootstrap_ci(correct[a] - correct[b], samples, confidence, seed)
            p, a_better, b_better = sign_test(correct[a], correct[b])
            rows.append({"a": a, "b": b, "accuracy_diff": diff, "ci_low": low, "ci_high": high,
                         "mcnemar_p": p, "a_right_b_wrong": a_better, "b_right_a_wrong": b_better})
    for row, adjusted in zip(rows, holm([r["mcnemar_p"] for r in rows])):
        row["mcnemar_p_holm"] = adjusted
    return rows


def metric_lead(labels: np.ndarray, predicted_a: np.ndarray, predicted_b: np.ndarray, k: int, metric: str,
                samples: int, confidence: float, seed: int,
                clusters: np.ndarray | None = None) -> tuple[float, float, float]:
    """A's lead over B in `metric` (accuracy, macro-F1, balanced accuracy) on the same texts, with a
    paired percentile bootstrap CI: each resample reweights the texts (or whole clusters) and recomputes
    both confusion matrices, as macro-F1 is not a mean over texts. Memory: about 2e7 weights at once."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    # texts × K² indicators of each text's confusion cell, sparse: one 1 a row
    onehot = [sparse.csr_matrix((np.ones(n), (np.arange(n), labels * k + np.asarray(p, dtype=np.int64))),
                                shape=(n, k * k)) for p in (predicted_a, predicted_b)]
    batch = max(1, min(BATCH, 20_000_000 // max(n, 1)))

    def lead(weights: np.ndarray) -> np.ndarray:  # resamples × texts → resamples
        a, b = (np.asarray(o.T @ weights.T).T.reshape(-1, k, k) for o in onehot)
        return selection.confusion_scores(a, metric) - selection.confusion_scores(b, metric)

    rng = np.random.default_rng(seed)
    if clusters is None:
        index, units = np.arange(len(labels)), len(labels)
    else:
        _, index = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
        units = int(index.max()) + 1
    leads = np.concatenate([
        lead(rng.multinomial(units, np.full(units, 1 / units), size=min(batch, samples - start))[:, index])
        for start in range(0, samples, batch)])
    low, high = _interval(leads, confidence)
    return float(lead(np.ones((1, n)))[0]), low, high


def mean_std(mean: float, std: float | None, seeds: int) -> str:
    """`0.8880 ± 0.0021 (3 seeds)`, or `0.8880 (1 seed)`: never a made-up ± 0 for one seed."""
    if seeds == 1 or std is None:
        return f"{mean:.4f} (1 seed)"
    return f"{mean:.4f} ± {std:.4f} ({seeds} seeds)"
