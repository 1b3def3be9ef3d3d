"""What every Keras family's settings share: the optimizer settings, XLA and precision, and the tuned
hyperparameters (optimizer, batch size, learning rate)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from imdbclf.settings.strict import BaseConfig, BaseHyperparameters, Strict

OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")


class OptimizerSettings(Strict):
    """The fixed part of optimisation; optimizer, batch size and learning rate are tuned."""

    schedule: Literal["constant", "linear_warmup_decay"] = "constant"
    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    epsilon: float = Field(1e-7, gt=0)


class KerasHyperparameters(BaseHyperparameters):
    optimizer: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    # auto: from the number of training texts (`imdbclf.sizing`, params.yaml's `sizing:`)
    batch_size: Annotated[int, Field(gt=0, le=65536)] | Literal["auto"] = 32
    learning_rate: float = Field(1e-3, gt=0)


class KerasConfig(BaseConfig):
    optimizer: OptimizerSettings = OptimizerSettings()
    jit_compile: bool = False
    # auto: mixed bfloat16/float16 on a GPU, float32 on a CPU; logits and loss stay float32.
    mixed_precision: Literal["auto", "off", "mixed_float16", "mixed_bfloat16"] = "auto"
