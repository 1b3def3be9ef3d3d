"""Model families behind one interface; the stages never ask which family they hold.

A family turns texts into class probabilities, an (n, K) matrix. It is configured by its `model:` section in params.yaml
(validated by `Config`), tuned over hyperparameters validated by `Hyperparameters` — both in
`imdbclf.settings.<family>`, which needs no TensorFlow. `base` is the interface, `registry`
maps names to families (docs/extending.md: adding one).
"""

from imdbclf.data import Split
from imdbclf.families.base import EpochLogger, Family, FitOptions, StepTiming, best_epoch, predicted_labels
from imdbclf.families.registry import (
           ENSEMBLE,
           FAMILIES,
           create,
           family_class,
           family_module,
           load_family,
           load_verified,
           saved_family,
           saved_meta,
           scoring_families,
)
from imdbclf.settings import Strict, hyperparameters

__all__ = ["ENSEMBLE", "FAMILIES", "EpochLogger", "Family", "FitOptions", "Split", "StepTiming",
           "Strict", "best_epoch", "create", "family_class", "family_module", "hyperparameters", "load_family",
           "load_verified", "predicted_labels", "saved_family", "saved_meta", "scoring_families"]
