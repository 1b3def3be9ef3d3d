"""Settings of the TF-IDF + logistic regression family (`imdbclf.families.tfidf_logreg`)."""

from __future__ import annotations

from pydantic import Field

from imdbclf.settings.streaming import LinearConfig
from imdbclf.settings.strict import BaseHyperparameters


class TfidfConfig(LinearConfig):
    max_features: int | None = Field(None, gt=0, le=50_000_000)
    sublinear_tf: bool = True
    max_iter: int = Field(1000, gt=0)


class TfidfHyperparameters(BaseHyperparameters):
    C: float = Field(1.0, gt=0)
    ngram_max: int = Field(2, ge=1, le=3)
    min_df: int = Field(2, ge=1)


Config = TfidfConfig
Hyperparameters = TfidfHyperparameters
