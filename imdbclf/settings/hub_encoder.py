"""Settings of the TF Hub encoder family (`imdbclf.families.keras.hub_encoder`)."""

from __future__ import annotations

from pydantic import Field

from imdbclf.settings.keras import KerasConfig, KerasHyperparameters, OptimizerSettings


class HubEncoderConfig(KerasConfig):
    encoder: str
    preprocessor: str
    seq_len: int = Field(128, gt=2)
    dropout: float = Field(0.1, ge=0, lt=1)
    # The report's AdamW recipe: 10% linear warm-up, linear decay to zero, epsilon 1e-6.
    optimizer: OptimizerSettings = OptimizerSettings(schedule="linear_warmup_decay", epsilon=1e-6)


Config = HubEncoderConfig
Hyperparameters = KerasHyperparameters
