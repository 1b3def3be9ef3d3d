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
           REGISTRY,
           SCORING_PACKAGES,
           create,
           family_class,
           family_module,
           load,
           load_verified,
           saved_family,
           saved_meta,
           scoring_families,
)
from imdbclf.settings import Strict, hyperparameters

__all__ = ["ENSEMBLE", "REGISTRY", "SCORING_PACKAGES", "EpochLogger", "Family", "FitOptions", "Split", "StepTiming",
           "Strict", "best_epoch", "create", "family_class", "family_module", "hyperparameters", "load",
           "load_verified", "predicted_labels", "saved_family", "saved_meta", "scoring_families"]
