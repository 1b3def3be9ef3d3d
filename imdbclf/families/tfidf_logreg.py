"""The baseline every neural model must beat: TF-IDF word n-grams + logistic regression.

The fitted pipeline is saved with skops, not pickle: loading it builds only the scikit-learn and NumPy
types skops knows to be safe, plus the one function of ours it refers to (TRUSTED), and refuses any
other, so a planted file cannot run code."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import skops.io
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from imdbclf.data import Split
from imdbclf.errors import UserError
from imdbclf.families import features
from imdbclf.families.base import Family, FitOptions
from imdbclf.settings.tfidf_logreg import TfidfConfig, TfidfHyperparameters

PIPELINE_FILE = "pipeline.skops"
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

    def fit(self, train: Split, val: Split, hp: TfidfHyperparameters, options: FitOptions) -> dict[str, list[float]]:
        vectorizer, matrix = features.fit_transform(TfidfVectorizer(
            preprocessor=_strip_markup, ngram_range=(1, hp.ngram_max), min_df=hp.min_df,
            max_features=self.config.max_features, sublinear_tf=self.config.sublinear_tf,
        ), self.prepared(train.texts))
        # K > 2 classes: multinomial (scikit-learn's lbfgs fits one softmax model, not one per class)
        logreg = LogisticRegression(C=hp.C, max_iter=self.config.max_iter, random_state=options.seed,
                                    class_weight=options.class_weight)
        logreg.fit(matrix, train.labels)
        self.pipeline = Pipeline([("tfidf", vectorizer), ("logreg", logreg)])
        self.classes = train.classes
        return self.one_pass_history(train, val, options, train_proba=logreg.predict_proba(matrix))

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        return self.pipeline.predict_proba(self.prepared(texts))

    def trainable_params(self) -> int:
        logreg = self.pipeline.named_steps["logreg"]
        return int(logreg.coef_.size + logreg.intercept_.size)

    def _save(self, path: Path) -> None:
        skops.io.dump(self.pipeline, path / PIPELINE_FILE)

    @classmethod
    def _load(cls, path: Path, config: TfidfConfig) -> TfidfLogReg:
        if (path / PICKLED).exists() and not (path / PIPELINE_FILE).exists():
            raise UserError(f"{path / PICKLED}: a pickle (saved by an older version), not loaded since loading "
                            "a pickle runs code: retrain the model (dvc repro)")
        untrusted = sorted(set(skops.io.get_untrusted_types(file=path / PIPELINE_FILE)) - set(TRUSTED))
        if untrusted:
            raise UserError(f"{path / PIPELINE_FILE}: holds types outside the trusted list ({', '.join(untrusted)}): "
                            "refusing to load it")
        family = cls(config)
        family.pipeline = skops.io.load(path / PIPELINE_FILE, trusted=TRUSTED)
        return family
