"""Logistic regression on Naive-Bayes-weighted binary n-grams (Wang & Manning 2012, "NBSVM", with the
logistic loss as fastai's re-implementation): the cheapest strong baseline for long texts, for any
number of classes.

Each n-gram's presence is scaled by its log-count ratio r = log((p / |p|₁) / (q / |q|₁)), where p and q
count (smoothed by alpha) the training texts of a class and of the others that contain it: the linear
model then starts from Naive Bayes' evidence and learns how far to trust it. Two classes: one ratio and
one model, the second class against the first (Wang & Manning's case); K classes: one-vs-rest, a ratio
and a model per class, their probabilities normalised to sum to one. r comes from the training split
alone. The saved model is plain data — the vocabulary as JSON, the ratios and weights as .npy — so
loading it runs no code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from imdbclf.data import Split
from imdbclf.families import features
from imdbclf.families.base import Family, FitOptions, binary_matrix
from imdbclf.settings.nb_logreg import NbLogRegConfig, NbLogRegHyperparameters

VOCABULARY, WEIGHTS = "vocabulary.json", "weights.npz"


class NbLogReg(Family):
    name = "nb_logreg"
    loads_only_data = True
    Config = NbLogRegConfig
    Hyperparameters = NbLogRegHyperparameters
    config: NbLogRegConfig

    def __init__(self, config: NbLogRegConfig):
        super().__init__(config)
        self.vectorizer: CountVectorizer | None = None
        # one row per scored class: the second of two, or each of K (one-vs-rest)
        self.ratio = self.coef = np.zeros((0, 0))
        self.intercept = np.zeros(0)

    def _vectorizer(self, ngram_max: int, vocabulary: dict[str, int] | None = None) -> CountVectorizer:
        return CountVectorizer(preprocessor=str.lower, token_pattern=self.config.token_pattern, binary=True,
                               ngram_range=(1, ngram_max), max_features=self.config.max_features,
                               vocabulary=vocabulary, dtype=np.float32)

    def fit(self, train: Split, val: Split, hp: NbLogRegHyperparameters, options: FitOptions) -> dict[str, list[float]]:
        self.classes = train.classes
        self.vectorizer, present = features.fit_transform(self._vectorizer(hp.ngram_max), self.prepared(train.texts))
        scored = [1] if len(self.classes) == 2 else range(len(self.classes))
        weights = (None if options.class_weight is None else
                   np.array([options.class_weight.get(int(c), 1.0) for c in train.labels]))
        ratios, coefs, intercepts, columns = [], [], [], []
        for c in scored:
            ratio = self._ratio(present, train.labels == c)
            model = LogisticRegression(C=hp.C, solver="liblinear", max_iter=self.config.max_iter,
                                       random_state=options.seed)
            weighted = present.multiply(ratio).tocsr()
            model.fit(weighted, (train.labels == c).astype(np.int64), sample_weight=weights)
            ratios.append(ratio)
            coefs.append(model.coef_.ravel().astype(np.float64))
            intercepts.append(float(model.intercept_[0]))
            columns.append(weighted @ coefs[-1] + intercepts[-1])
        self.ratio, self.coef, self.intercept = np.stack(ratios), np.stack(coefs), np.array(intercepts)
        return self.one_pass_history(train, val, options, train_proba=self._proba(np.column_stack(columns)))

    def _ratio(self, present, inside: np.ndarray) -> np.ndarray:
        """log((p / |p|₁) / (q / |q|₁)): how much more often each n-gram occurs in the class's texts."""
        alpha = self.config.alpha
        p = alpha + np.asarray(present[inside].sum(axis=0)).ravel()
        q = alpha + np.asarray(present[~inside].sum(axis=0)).ravel()
        return np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        present = self.vectorizer.transform(self.prepared(texts))
        return self._proba(np.column_stack([present.multiply(ratio).tocsr() @ coef + intercept
                                            for ratio, coef, intercept in zip(self.ratio, self.coef, self.intercept)]))

    def _proba(self, logits: np.ndarray) -> np.ndarray:
        """Each scored class's logit → the (n, K) matrix: two classes the second's sigmoid; K the
        one-vs-rest sigmoids normalised to sum to one."""
        sigmoid = 1.0 / (1.0 + np.exp(-logits))
        if len(self.classes) == 2:
            return binary_matrix(sigmoid[:, 0])
        return sigmoid / np.maximum(sigmoid.sum(axis=1, keepdims=True), 1e-300)

    def trainable_params(self) -> int:
        return int(self.coef.size + self.intercept.size)

    def _save(self, path: Path) -> None:
        vocabulary = {term: int(index) for term, index in self.vectorizer.vocabulary_.items()}
        ngram_max = self.vectorizer.ngram_range[1]
        (path / VOCABULARY).write_text(json.dumps({"ngram_max": ngram_max, "terms": vocabulary}))
        np.savez(path / WEIGHTS, ratio=self.ratio, coef=self.coef, intercept=self.intercept)

    @classmethod
    def _load(cls, path: Path, config: NbLogRegConfig) -> NbLogReg:
        family = cls(config)
        saved = json.loads((path / VOCABULARY).read_text())
        family.vectorizer = family._vectorizer(saved["ngram_max"], saved["terms"])
        with np.load(path / WEIGHTS, allow_pickle=False) as weights:
            family.ratio, family.coef = np.atleast_2d(weights["ratio"]), np.atleast_2d(weights["coef"])
            family.intercept = np.atleast_1d(weights["intercept"]).astype(np.float64)
        return family
