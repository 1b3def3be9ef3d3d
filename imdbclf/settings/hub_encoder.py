"""Settings of the TF Hub encoder family (`imdbclf.families.keras.hub_encoder`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from imdbclf.settings.keras import KerasConfig, KerasHyperparameters, OptimizerSettings


class HubEncoderConfig(KerasConfig):
    encoder: str
    preprocessor: str
    seq_len: int = Field(128, gt=2, le=8192)
    # A review longer than seq_len: keep its first tokens (head, as BERT's preprocessor does), or its
    # first head_tokens and its last ones (head_tail: a review's verdict is often in its closing lines).
    truncate: Literal["head", "head_tail"] = "head"
    head_tokens: int = Field(64, ge=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    # The report's AdamW recipe: 10% linear warm-up, linear decay to zero, epsilon 1e-6.
    optimizer: OptimizerSettings = OptimizerSettings(schedule="linear_warmup_decay", epsilon=1e-6)

    @model_validator(mode="after")
    def _head_fits(self) -> HubEncoderConfig:
        if self.truncate == "head_tail" and self.head_tokens > self.seq_len - 2:
            raise ValueError(f"head_tokens ({self.head_tokens}) must leave room in seq_len ({self.seq_len}) "
                             "for [CLS] and [SEP]: at most seq_len - 2")
        return self


Config = HubEncoderConfig
Hyperparameters = KerasHyperparameters
