"""Each family's settings: the schema of its `model:` section (`Config`) and of its tuning grid's values
(`Hyperparameters`), one module per family, with defaults.

Pure pydantic, no TensorFlow: validating params.yaml (every stage does, `fetch` included) costs no
TensorFlow start-up; the family classes import their schema from here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
