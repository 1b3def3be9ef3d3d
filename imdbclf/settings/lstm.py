"""Settings of the Bi-LSTM family (`imdbclf.families.keras.lstm`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from imdbclf.settings.keras import KerasConfig, KerasHyperparameters


class BiLSTMConfig(KerasConfig):
    # Bounded so that a typo (1e12) is an error, not a request for terabytes of embeddings.
    vocab_size: int = Field(20000, gt=2, le=2_000_000)
    seq_len: int = Field(256, gt=0, le=20_000)
    # Which end of a long review to keep: "post" keeps the beginning, "pre" the end.
    truncate: Literal["post", "pre"] = "post"
    embed_dim: int = Field(128, gt=0, le=4096)
    lstm_units: int = Field(64, gt=0, le=4096)
    pooling: Literal["last", "max"] = "max"
    dropout: float = Field(0.3, ge=0, lt=1)


Config = BiLSTMConfig
Hyperparameters = KerasHyperparameters
