"""Settings of the NB-weighted logistic regression family (`imdbclf.families.nb_logreg`)."""

from __future__ import annotations

from pydantic import Field

from imdbclf.settings.streaming import LinearConfig
from imdbclf.settings.strict import BaseHyperparameters

# Words (with their apostrophes) and the punctuation that carries sentiment: "Boring? Never!" keeps its ? and !.
TOKENS = r"[^\W_]+(?:'[^\W_]+)?|[!?]"


class NbLogRegConfig(LinearConfig):
    max_features: int | None = Field(800_000, gt=0, le=50_000_000)  # the most frequent n-grams of the training split
    token_pattern: str = TOKENS
    alpha: float = Field(1.0, gt=0)  # smoothing of the log-count ratio
    max_iter: int = Field(1000, gt=0)


class NbLogRegHyperparameters(BaseHyperparameters):
    C: float = Field(0.1, gt=0)
    ngram_max: int = Field(3, ge=1, le=3)


Config = NbLogRegConfig
Hyperparameters = NbLogRegHyperparameters
