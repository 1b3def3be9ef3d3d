"""Logistic regression on Naive-Bayes-weighted binary n-grams (Wang & Manning 2012, "NBSVM", with the
logistic loss as fastai's re-implementation): the cheapest strong baseline for long texts, for any
number of classes.

Each n-gram's presence is scaled by its log-count ratio r = log((p / |p|₁) / (q / |q|₁)), where p and q
count (smoothed by alpha) the training texts of a class and of the others that contain it: the linear
model then starts from Naive Bayes' evidence and learns how far to trust it. Two classes: one ratio and
one model, the second class against the first (Wang & Manning's case); K classes: one-vs-rest, a ratio
and a model per class, their probabilities normalised to sum to one. r comes from the training split
alone. Past `exact_up_to` training texts the n-grams are hashed and the fit streams (`streamed`): the
same model, memory flat in the rows. The saved model is plain data — the vocabulary as JSON (or the
hashing's settings), the ratios and weights as .npz — so loading it runs no code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
from sklearn.linear_model import LogisticRegression

from imdbclf.data import Split
from imdbclf.families import features, streamed
from imdbclf.families.base import Family, FitOptions
from imdbclf.settings.nb_logreg import NbLogRegConfig, NbLogRegHyperparameters

VOCABULARY, HASHING, WEIGHTS = "vocabulary.json", "hashing.json", "weights.npz"


class NbLogReg(Family):
    name = "nb_logreg"
    loads_only_data = True
    Config = NbLogRegConfig
    Hyperparameters = NbLogRegHyperparameters
    config: NbLogRegConfig

    def __init__(self, config: NbLogRegConfig):
        super().__init__(config)
        self.vectorizer: CountVectorizer | HashingVectorizer | None = None
        # one row per scored class: the second of two, or each of K (one-vs-rest)
        self.ratio = self.coef = np.zeros((0, 0))
        self.intercept = np.zeros(0)

    def _vectorizer(self, ngram_max: int, vocabulary: dict[str, int] | None = None) -> CountVectorizer:
        return CountVectorizer(preprocessor=str.lower, token_pattern=self.config.token_pattern, binary=True,
                               ngram_range=(1, ngram_max), max_features=self.config.max_features,
                               vocabulary=vocabulary, dtype=np.float32)

    def _hashing(self, ngram_max: int, hash_bits: int) -> HashingVectorizer:
        return HashingVectorizer(preprocessor=str.lower, token_pattern=self.config.token_pattern, binary=True,
                                 ngram_range=(1, ngram_max), n_features=2**hash_bits, norm=None,
                                 alternate_sign=False, dtype=np.float32)

    def fit(self, train: Split, val: Split, hp: NbLogRegHyperparameters, options: FitOptions) -> dict[str, list[float]]:
        self.classes = train.classes
        scored = [1] if len(self.classes) == 2 else range(len(self.classes))
        weights = options.sample_weights(train.labels)
        if len(train) > self.config.exact_up_to:
            return self._fit_streamed(train, val, hp, options, scored, weights)
        self.vectorizer, present = features.fit_transform(self._vectorizer(hp.ngram_max), self.prepared(train.texts))
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

    def _fit_streamed(self, train: Split, val: Split, hp: NbLogRegHyperparameters, options: FitOptions,
                      scored: Sequence[int], weights: np.ndarray | None) -> dict[str, list[float]]:
        """The same model past `exact_up_to` texts: hashed n-grams, counts summed and SGD run by chunks."""
        self.vectorizer = self._hashing(hp.ngram_max, self.config.hash_bits)
        chunks = features.hashed(self.vectorizer, self.prepared(train.texts), self.config.chunk_texts)
        ratios, coefs, intercepts = [], [], []
        counts = streamed.class_sums(chunks, train.labels, len(self.classes))
        total = counts.sum(axis=0)
        kept = streamed.most_frequent(total, self.config.max_features)  # as the exact path's
        for c in scored:
            inside = train.labels == c
            ratio = self._log_ratio(counts[c], total - counts[c]) * kept
            coef, intercept = streamed.sgd_fit(chunks, inside.astype(np.int64),
                                               lambda x, r=ratio: x.multiply(r).tocsr(),
                                               hp.C, self.config.sgd_epochs, options.seed, weights)
            ratios.append(ratio)
            coefs.append(coef.astype(np.float64))
            intercepts.append(intercept)
        self.ratio, self.coef, self.intercept = np.stack(ratios), np.stack(coefs), np.array(intercepts)
        train_proba = np.concatenate([self._scored(chunk) for _, chunk in chunks])
        return self.one_pass_history(train, val, options, train_proba=train_proba)

    def _ratio(self, present, inside: np.ndarray) -> np.ndarray:
        return self._log_ratio(np.asarray(present[inside].sum(axis=0)).ravel(),
                               np.asarray(present[~inside].sum(axis=0)).ravel())

    def _log_ratio(self, inside_counts: np.ndarray, outside_counts: np.ndarray) -> np.ndarray:
        """log((p / |p|₁) / (q / |q|₁)): how much more often each n-gram occurs in the class's texts."""
        p, q = self.config.alpha + inside_counts, self.config.alpha + outside_counts
        return np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        return streamed.in_chunks(self.prepared(texts), self.config.chunk_texts,
                                  lambda part: self._scored(self.vectorizer.transform(part)))

    def _scored(self, present) -> np.ndarray:
        return self._proba(np.column_stack([present.multiply(ratio).tocsr() @ coef + intercept
                                            for ratio, coef, intercept in zip(self.ratio, self.coef, self.intercept)]))

    def _proba(self, logits: np.ndarray) -> np.ndarray:
        return streamed.one_vs_rest_proba(logits, len(self.classes))

    def trainable_params(self) -> int:
        return int(self.coef.size + self.intercept.size)

    def _save(self, path: Path) -> None:
        ngram_max = self.vectorizer.ngram_range[1]
        if isinstance(self.vectorizer, HashingVectorizer):
            hash_bits = int(np.log2(self.vectorizer.n_features))
            (path / HASHING).write_text(json.dumps({"ngram_max": ngram_max, "hash_bits": hash_bits}))
        else:
            vocabulary = {term: int(index) for term, index in self.vectorizer.vocabulary_.items()}
            (path / VOCABULARY).write_text(json.dumps({"ngram_max": ngram_max, "terms": vocabulary}))
        np.savez(path / WEIGHTS, ratio=self.ratio, coef=self.coef, intercept=self.intercept)

    @classmethod
    def _load(cls, path: Path, config: NbLogRegConfig) -> NbLogReg:
        family = cls(config)
        if (path / HASHING).exists():
            saved = json.loads((path / HASHING).read_text())
            family.vectorizer = family._hashing(saved["ngram_max"], saved["hash_bits"])
        else:
            saved = json.loads((path / VOCABULARY).read_text())
            family.vectorizer = family._vectorizer(saved["ngram_max"], saved["terms"])
        with np.load(path / WEIGHTS, allow_pickle=False) as weights:
            family.ratio, family.coef = np.atleast_2d(weights["ratio"]), np.atleast_2d(weights["coef"])
            family.intercept = np.atleast_1d(weights["intercept"]).astype(np.float64)
        return family
