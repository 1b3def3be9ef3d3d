"""Model families behind one interface; the stages never ask which family they hold.

A family turns reviews into P(positive). It is configured by its `model:` section in params.yaml
(validated by `Config`), tuned over hyperparameters validated by `Hyperparameters` — both in
`imdbclf.families.settings.<family>`, which needs no TensorFlow — and saved to / loaded from a
directory that also records which family it is.
"""

from __future__ import annotations

import importlib
import json
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import ValidationError

from imdbclf import console, failpoints
from imdbclf.data import Split
from imdbclf.errors import UserError, format_validation_error
from imdbclf.families.settings import Strict

__all__ = ["Split", "Strict", "Family", "FitOptions", "StepTiming", "best_epoch", "create", "load", "hyperparameters"]

# family name -> "module:Class"; imported lazily so the TF-free baseline does not load TensorFlow.
# Each family's settings are in imdbclf.families.settings.<family name>.
REGISTRY = {
    "lstm": "imdbclf.families.lstm:BiLSTM",
    "tfidf_logreg": "imdbclf.families.tfidf_logreg:TfidfLogReg",
    "hub_encoder": "imdbclf.families.hub_encoder:HubEncoder",
}
# family name -> what scoring its saved model imports beyond the package's base (serving.SCORING_PACKAGES),
# by the names in requirements.txt: the logged MLflow model's pip requirements. setuptools: tensorflow_hub
# imports pkg_resources, which setuptools 81+ no longer ships.
SCORING_PACKAGES = {
    "lstm": ("tensorflow", "tf-keras"),
    "tfidf_logreg": ("joblib",),
    "hub_encoder": ("tensorflow", "tf-keras", "tensorflow-hub", "tensorflow-text", "setuptools"),
}
FAMILY_FILE = "family.json"
TEMP_MARK = ".tmp-"  # `.<name>.tmp-*`: a save in progress (or killed) beside the model directory <name>

EpochLogger = Callable[[int, dict], None]


def best_epoch(history: dict[str, list[float]]) -> int:
    """The one rule for "the best epoch" (0-based), used by early stopping, the restored weights, the
    reported metrics and the champion alike: highest validation accuracy, ties to the lower validation
    loss, then to the earlier epoch."""
    accuracy, loss = history["val_accuracy"], history["val_loss"]
    return max(range(len(accuracy)), key=lambda i: (accuracy[i], -loss[i], -i))


@dataclass(frozen=True)
class FitOptions:
    epochs: int
    seed: int = 0
    patience: int | None = None  # early stopping: stop after `patience` epochs without a new best epoch
    # A checkpoint per epoch; the best epoch's is restored after fit. A fit with the same inputs as the
    # interrupted one that wrote it resumes after its last complete epoch.
    checkpoint_dir: Path | None = None
    on_epoch_end: EpochLogger | None = None
    verbose: int = 1  # 0: silent; otherwise a progress bar per epoch (a line per ~10% off a terminal)


@dataclass(frozen=True)
class StepTiming:
    """How long a fit takes here, in the terms a stage's estimate multiplies out."""

    steps_per_epoch: int
    seconds_per_step: float


class Family(ABC):
    """What every model family provides to the stages."""

    name: ClassVar[str]
    Config: ClassVar[type[Strict]]
    Hyperparameters: ClassVar[type[Strict]]

    def __init__(self, config: Strict):
        self.config = config
        # Epochs that the last fit took from an interrupted run's checkpoints instead of training them.
        self.resumed_from_epoch = 0

    @abstractmethod
    def fit(self, train: Split, val: Split, hp: Strict, options: FitOptions) -> dict[str, list[float]]:
        """Train a fresh model; return per-epoch history (loss, accuracy, val_loss, val_accuracy).
        With a checkpoint_dir, the model left behind is the one of `best_epoch(history)`."""

    @abstractmethod
    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """P(positive) for each review."""

    @abstractmethod
    def trainable_params(self) -> int: ...

    def runtime(self) -> dict[str, str]:
        """What training resolves at run time and a result depends on (device, numeric precision)."""
        return {"device": "cpu", "precision": "float64"}

    def time_steps(self, train: Split, hp: Strict, steps: int) -> StepTiming | None:
        """Time a few training steps of a fresh model on `train`, leaving this family as it was, so that
        a stage can tell how long it would take before it starts (`imdbclf.compute`); None: the family
        does not train in steps (a solver that runs once), and there is nothing to time."""
        return None

    @abstractmethod
    def _save(self, path: Path) -> None: ...

    @classmethod
    @abstractmethod
    def _load(cls, path: Path, config: Strict) -> Family: ...

    def save(self, path: Path) -> None:
        """Write into a temp directory beside `path`, family.json last, then rename it into place: a
        killed save leaves the old model (or none), never half of one. The next save of `path` removes
        the temp directories that a killed save left."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{path.name}{TEMP_MARK}"
        for stale in path.parent.glob(f"{prefix}*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = path.parent / f"{prefix}{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        old = tmp.with_name(f"{tmp.name}-old")
        try:
            self._save(tmp)
            meta = {"family": self.name, "config": self.config.model_dump()}
            (tmp / FAMILY_FILE).write_text(json.dumps(meta, indent=2))
            failpoints.reached(f"save:{path.parent.name}/{path.name}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if path.exists():  # a directory cannot be renamed onto a full one: move the old one aside first
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)


def family_module(name: str) -> str:
    """The module of a family (without importing it: the TF-free stages only need its name)."""
    if name not in REGISTRY:
        raise UserError(f"unknown model family '{name}' (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name].split(":")[0]


def family_class(name: str) -> type[Family]:
    module = family_module(name)
    with console.quiet_native_stderr():  # TensorFlow's start-up lines, for the Keras families
        imported = importlib.import_module(module)
    return getattr(imported, REGISTRY[name].split(":")[1])


def settings(name: str):
    """The module with the family's `Config` and `Hyperparameters` (pydantic only, no TensorFlow)."""
    family_module(name)  # an unknown family is a UserError
    return importlib.import_module(f"{__name__}.settings.{name}")


def _validate(model: type[Strict], values: dict[str, Any], where: str) -> Strict:
    try:
        return model.model_validate(values)
    except ValidationError as err:
        raise UserError(format_validation_error(err, where)) from None


def create(model_name: str, section) -> Family:
    """A fresh, untrained family for the params section of `model_name`."""
    config = _validate(settings(section.family).Config, section.model, f"{model_name}.model")
    return family_class(section.family)(config)


def hyperparameters(model_name: str, section, values: dict[str, Any]) -> Strict:
    return _validate(settings(section.family).Hyperparameters, values, f"{model_name}.tune.grid")


def validate_section(model_name: str, section) -> None:
    """Fail at load time, naming the key, on a bad family, model setting or grid value; imports no
    TensorFlow (the settings are pure pydantic)."""
    if section.family not in REGISTRY:
        raise UserError(f"params.yaml: {model_name}.family: unknown model family '{section.family}' "
                        f"(known: {', '.join(sorted(REGISTRY))})")
    _validate(settings(section.family).Config, section.model, f"{model_name}.model")
    first = {key: values[0] for key, values in section.tune.grid.items()}
    for key, values in section.tune.grid.items():
        for value in values:
            hyperparameters(model_name, section, {**first, key: value})


def saved_family(path: Path) -> str:
    """The family name of a saved model directory, read without loading the model (or TensorFlow)."""
    path = Path(path)
    if not (path / FAMILY_FILE).exists():
        raise UserError(f"{path}: not a saved model directory (no {FAMILY_FILE})")
    return json.loads((path / FAMILY_FILE).read_text())["family"]


def load(path: Path) -> Family:
    """A saved family; a directory that is not one, or only part of one, is a UserError naming it."""
    path = Path(path)
    if not (path / FAMILY_FILE).exists():
        raise UserError(f"{path}: not a saved model directory (no {FAMILY_FILE})")
    try:
        meta = json.loads((path / FAMILY_FILE).read_text())
        cls = family_class(meta["family"])
        return cls._load(path, cls.Config.model_validate(meta["config"]))
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - TF, joblib and h5py fail on a damaged file in many types
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: incomplete or damaged saved model ({reason}); save it again") from None
