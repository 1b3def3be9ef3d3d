"""The baseline every neural model must beat: TF-IDF word n-grams + logistic regression.

Past `exact_up_to` training texts the fit streams (`streamed`): hashed n-gram counts, document
frequencies summed by chunks (min_df applied to them), one logistic model per scored class by SGD.
The fitted model is saved as plain data, so loading it runs no code: the vocabulary as a JSON list of
terms (in column order), the idf weights and the classifier's coefficients as .npz. A model saved by
earlier versions (`pipeline.skops`, one JSON node per term: 237 MB for 369k terms where this format
takes 9 MB) still loads through skops, which builds only the types it knows to be safe plus the
functions of ours in TRUSTED; a pickle (`pipeline.joblib`, older still) is refused."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import skops.io
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from imdbclf.data import Split
from imdbclf.errors import UserError
from imdbclf.families import features, streamed
from imdbclf.families.base import Family, FitOptions
from imdbclf.settings.tfidf_logreg import TfidfConfig, TfidfHyperparameters

VOCABULARY, HASHING, WEIGHTS = "vocabulary.json", "hashing.json", "weights.npz"
PIPELINE_FILE = "pipeline.skops"  # what versions before plain data saved: loaded through skops
PICKLED = "pipeline.joblib"  # what versions before skops saved: a pickle, never loaded


def _strip_markup(text: str) -> str:
    """A no-op on normalised texts; with `normalize_text: false` the line breaks of the recorded figures go."""
    return text.replace("<br />", " ").lower()


def _lower(text: str) -> str:  # the preprocessor of pipelines saved while normalised texts skipped the line above
    return text.lower()


TRUSTED = [f"{__name__}._strip_markup", f"{__name__}._lower"]  # beyond skops' own safe types: the preprocessors above


class TfidfLogReg(Family):
    name = "tfidf_logreg"
    loads_only_data = True
    Config = TfidfConfig
    Hyperparameters = TfidfHyperparameters
    config: TfidfConfig

    def __init__(self, config: TfidfConfig):
        super().__init__(config)
        self.pipeline: Pipeline | None = None
        self.hashed: Pipeline | None = None  # streamed: hashing, then TF-IDF; scored by coef and intercept
        self.coef, self.intercept = np.zeros((0, 0)), np.zeros(0)

    def _vectorizer(self, ngram_max: int, min_df: int = 1,
                    vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
        return TfidfVectorizer(preprocessor=_strip_markup, ngram_range=(1, ngram_max), min_df=min_df,
                               max_features=self.config.max_features, sublinear_tf=self.config.sublinear_tf,
                               vocabulary=vocabulary)

    def _hashed(self, ngram_max: int, hash_bits: int, idf: np.ndarray | None = None) -> Pipeline:
        transformer = TfidfTransformer(sublinear_tf=self.config.sublinear_tf)
        if idf is not None:
            transformer.idf_ = idf
        return Pipeline([("hash", HashingVectorizer(preprocessor=_strip_markup, ngram_range=(1, ngram_max),
                                                    n_features=2**hash_bits, norm=None, alternate_sign=False)),
                         ("tfidf", transformer)])

    def fit(self, train: Split, val: Split, hp: TfidfHyperparameters, options: FitOptions) -> dict[str, list[float]]:
        if len(train) > self.config.exact_up_to:
            return self._fit_streamed(train, val, hp, options)
        vectorizer, matrix = features.fit_transform(self._vectorizer(hp.ngram_max, hp.min_df),
                                                    self.prepared(train.texts))
        # K > 2 classes: multinomial (scikit-learn's lbfgs fits one softmax model, not one per class)
        logreg = LogisticRegression(C=hp.C, max_iter=self.config.max_iter, random_state=options.seed,
                                    class_weight=options.class_weight)
        logreg.fit(matrix, train.labels)
        self.pipeline = Pipeline([("tfidf", vectorizer), ("logreg", logreg)])
        self.classes = train.classes
        return self.one_pass_history(train, val, options, train_proba=logreg.predict_proba(matrix))

    def _fit_streamed(self, train: Split, val: Split, hp: TfidfHyperparameters,
                      options: FitOptions) -> dict[str, list[float]]:
        """The same features past `exact_up_to` texts, hashed; idf as scikit-learn's (smoothed), 0 below min_df."""
        self.classes = train.classes
        self.hashed = self._hashed(hp.ngram_max, self.config.hash_bits)
        chunks = features.hashed(self.hashed.named_steps["hash"], self.prepared(train.texts), self.config.chunk_texts)
        df = streamed.column_sums(chunks, present=True)
        idf = np.where(df >= hp.min_df, np.log((1 + len(train)) / (1 + df)) + 1, 0.0)
        self.hashed.named_steps["tfidf"].idf_ = idf
        tfidf = self.hashed.named_steps["tfidf"].transform
        weights = options.sample_weights(train.labels)
        fitted = [streamed.sgd_fit(chunks, (train.labels == c).astype(np.int64), tfidf, hp.C, self.config.sgd_epochs,
                                   options.seed, weights)
                  for c in ([1] if len(self.classes) == 2 else range(len(self.classes)))]
        self.coef = np.stack([coef.astype(np.float64) for coef, _ in fitted])
        self.intercept = np.array([intercept for _, intercept in fitted])
        train_proba = np.concatenate([self._scored(tfidf(chunk)) for _, chunk in chunks])
        return self.one_pass_history(train, val, options, train_proba=train_proba)

    def _scored(self, features: np.ndarray) -> np.ndarray:
        return streamed.one_vs_rest_proba(features @ self.coef.T + self.intercept, len(self.classes))

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        if self.hashed is None:
            return self.pipeline.predict_proba(self.prepared(texts))
        return streamed.in_chunks(self.prepared(texts), self.config.chunk_texts,
                                  lambda part: self._scored(self.hashed.transform(part)))

    def trainable_params(self) -> int:
        if self.hashed is not None:
            return int(self.coef.size + self.intercept.size)
        logreg = self.pipeline.named_steps["logreg"]
        return int(logreg.coef_.size + logreg.intercept_.size)

    def _save(self, path: Path) -> None:
        if self.hashed is not None:
            hashing = self.hashed.named_steps["hash"]
            (path / HASHING).write_text(json.dumps({"ngram_max": hashing.ngram_range[1],
                                                    "hash_bits": int(np.log2(hashing.n_features))}))
            np.savez(path / WEIGHTS, idf=self.hashed.named_steps["tfidf"].idf_, coef=self.coef,
                     intercept=self.intercept)
            return
        vectorizer, logreg = self.pipeline.named_steps["tfidf"], self.pipeline.named_steps["logreg"]
        terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
        (path / VOCABULARY).write_text(json.dumps({"ngram_max": vectorizer.ngram_range[1], "terms": terms}))
        np.savez(path / WEIGHTS, idf=vectorizer.idf_, coef=logreg.coef_, intercept=logreg.intercept_,
                 classes=logreg.classes_)

    @classmethod
    def _load(cls, path: Path, config: TfidfConfig) -> TfidfLogReg:
        family = cls(config)
        if (path / HASHING).exists():
            saved = json.loads((path / HASHING).read_text())
            with np.load(path / WEIGHTS, allow_pickle=False) as weights:
                family.hashed = family._hashed(saved["ngram_max"], saved["hash_bits"], weights["idf"])
                family.coef, family.intercept = weights["coef"], weights["intercept"]
            return family
        if not (path / VOCABULARY).exists():
            family.pipeline = _saved_pipeline(path)
            return family
        saved = json.loads((path / VOCABULARY).read_text())
        vectorizer = family._vectorizer(saved["ngram_max"], vocabulary={t: i for i, t in enumerate(saved["terms"])})
        logreg = LogisticRegression()
        with np.load(path / WEIGHTS, allow_pickle=False) as weights:
            vectorizer.idf_ = weights["idf"]
            logreg.coef_, logreg.intercept_, logreg.classes_ = weights["coef"], weights["intercept"], weights["classes"]
        family.pipeline = Pipeline([("tfidf", vectorizer), ("logreg", logreg)])
        return family


def _saved_pipeline(path: Path) -> Pipeline:
    """A pipeline saved by an earlier version: skops, with only the trusted types; never a pickle."""
    if (path / PICKLED).exists() and not (path / PIPELINE_FILE).exists():
        raise UserError(f"{path / PICKLED}: a pickle (saved by an older version), not loaded since loading "
                        "a pickle runs code: retrain the model (dvc repro)")
    untrusted = sorted(set(skops.io.get_untrusted_types(file=path / PIPELINE_FILE)) - set(TRUSTED))
    if untrusted:
        raise UserError(f"{path / PIPELINE_FILE}: holds types outside the trusted list ({', '.join(untrusted)}): "
                        "refusing to load it")
    return skops.io.load(path / PIPELINE_FILE, trusted=TRUSTED)
