"""The base of every family's settings: unknown keys are errors, values are frozen."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseHyperparameters(Strict):
    """What every family's tuned values share: how its loss weighs the classes (a grid may try both).
    auto: `balanced` when the training classes are not (`selection.balanced_ratio`), else none."""

    class_weight: Literal["auto", "balanced", "none"] = "auto"


class BaseConfig(Strict):
    """What every family's `model:` section shares."""

    # HTML markup and entities out, whitespace folded (`imdbclf.text`), in training and serving alike
    normalize_text: bool = True
