"""Logistic regression on Naive-Bayes-weighted binary n-grams (Wang & Manning 2012, "NBSVM", with the
logistic loss as fastai's re-implementation): the cheapest strong baseline for long reviews.

Each n-gram's presence is scaled by its log-count ratio r = log((p / |p|₁) / (q / |q|₁)), where p and q
count (smoothed by alpha) the positive and negative training reviews that contain it: the linear model
then starts from Naive Bayes' evidence and learns how far to trust it. r comes from the training split
alone. The saved model is plain data — the vocabulary as JSON, r and the weights as .npy — so loading
it runs no code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from imdbclf.data import Split
from imdbclf.errors import UserError
from imdbclf.families import features
from imdbclf.families.base import Family, FitOptions, binary_matrix
from imdbclf.settings.nb_logreg import NbLogRegConfig, NbLogRegHyperparameters

VOCABULARY, WEIGHTS = "vocabulary.json", "weights.npz"
MARKUP = re.compile(r"<br\s*/?>")


def _clean(text: str) -> str:
    return MARKUP.sub(" ", text).lower()


class NbLogReg(Family):
    name = "nb_logreg"
    loads_only_data = True
    Config = NbLogRegConfig
    Hyperparameters = NbLogRegHyperparameters
    config: NbLogRegConfig

    def __init__(self, config: NbLogRegConfig):
        super().__init__(config)
        self.vectorizer: CountVectorizer | None = None
        self.ratio = self.coef = np.zeros(0)
        self.intercept = 0.0

    def _vectorizer(self, ngram_max: int, vocabulary: dict[str, int] | None = None) -> CountVectorizer:
        return CountVectorizer(preprocessor=_clean, token_pattern=self.config.token_pattern, binary=True,
                               ngram_range=(1, ngram_max), max_features=self.config.max_features,
                               vocabulary=vocabulary, dtype=np.float32)

    def features(self, texts: Sequence[str]):
        """The reviews' binary n-grams scaled by r: a sparse matrix, reviews × n-grams."""
        return self.vectorizer.transform([str(t) for t in texts]).multiply(self.ratio).tocsr()

    def fit(self, train: Split, val: Split, hp: NbLogRegHyperparameters, options: FitOptions) -> dict[str, list[float]]:
        if len(train.classes) != 2:
            raise UserError(f"{self.where}: nb_logreg weighs n-grams by how much more often they occur in one "
                            f"class than the other: it takes two classes, and the data have {len(train.classes)}; "
                            "use tfidf_logreg or lstm for more")
        self.classes = train.classes
        self.vectorizer, present = features.fit_transform(self._vectorizer(hp.ngram_max), [str(t) for t in train.texts])
        alpha = self.config.alpha
        p = alpha + np.asarray(present[train.labels == 1].sum(axis=0)).ravel()
        q = alpha + np.asarray(present[train.labels == 0].sum(axis=0)).ravel()
        self.ratio = np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)
        model = LogisticRegression(C=hp.C, solver="liblinear", max_iter=self.config.max_iter,
                                   random_state=options.seed)
        weighted = present.multiply(self.ratio).tocsr()
        model.fit(weighted, train.labels)
        self.coef, self.intercept = model.coef_.ravel().astype(np.float64), float(model.intercept_[0])
        return self.one_pass_history(train, val, options, train_proba=self._proba(weighted))

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        return self._proba(self.features(texts))

    def _proba(self, weighted) -> np.ndarray:
        return binary_matrix(1.0 / (1.0 + np.exp(-(weighted @ self.coef + self.intercept))))

    def trainable_params(self) -> int:
        return int(self.coef.size + 1)

    def _save(self, path: Path) -> None:
        vocabulary = {term: int(index) for term, index in self.vectorizer.vocabulary_.items()}
        ngram_max = self.vectorizer.ngram_range[1]
        (path / VOCABULARY).write_text(json.dumps({"ngram_max": ngram_max, "terms": vocabulary}))
        np.savez(path / WEIGHTS, ratio=self.ratio, coef=self.coef, intercept=np.array([self.intercept]))

    @classmethod
    def _load(cls, path: Path, config: NbLogRegConfig) -> NbLogReg:
        family = cls(config)
        saved = json.loads((path / VOCABULARY).read_text())
        family.vectorizer = family._vectorizer(saved["ngram_max"], saved["terms"])
        with np.load(path / WEIGHTS, allow_pickle=False) as weights:
            family.ratio, family.coef = weights["ratio"], weights["coef"]
            family.intercept = float(weights["intercept"][0])
        return family
