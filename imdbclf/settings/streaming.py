"""What the two linear families share past `exact_up_to` training texts (`imdbclf.families.streamed`)."""

from __future__ import annotations

from pydantic import Field

from imdbclf.settings.strict import BaseConfig


class LinearConfig(BaseConfig):
    # Up to this many training texts: the exact fit (a vocabulary of every n-gram, then liblinear or lbfgs
    # on the whole matrix); past it, streamed: hashed n-grams and SGD a chunk at a time, so memory stays
    # flat whatever the rows (about 1.5 GiB at a million).
    exact_up_to: int = Field(200_000, ge=0)
    hash_bits: int = Field(22, ge=16, le=26)  # streamed: 2^hash_bits feature columns
    chunk_texts: int = Field(20_000, gt=0)  # streamed: texts hashed, fitted on and scored at a time
    sgd_epochs: int = Field(10, gt=0, le=100)  # streamed: passes over the training texts
