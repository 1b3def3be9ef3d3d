"""The `sizing:` section of params.yaml: how a neural family's `auto` batch size and epochs follow the
number of training texts (`imdbclf.sizing`). Pure pydantic, beside the families' settings."""

from __future__ import annotations

from pydantic import Field, model_validator

from imdbclf.settings.strict import Strict


class SizingParams(Strict):
    texts_per_batch: int = Field(100, gt=0)  # auto batch: the power of two nearest texts / this...
    min_batch: int = Field(16, gt=0, le=65536)  # ...within these bounds
    max_batch: int = Field(128, gt=0, le=65536)
    min_steps: int = Field(600, gt=0)  # auto epochs: at least this many optimizer steps in all...
    min_epochs: int = Field(2, gt=0)  # ...within these bounds (early stopping ends a retrain sooner)
    max_epochs: int = Field(30, gt=0, le=10_000)

    @model_validator(mode="after")
    def _bounds_in_order(self) -> SizingParams:
        if self.min_batch > self.max_batch or self.min_epochs > self.max_epochs:
            raise ValueError("min_batch must be at most max_batch, and min_epochs at most max_epochs")
        return self
