"""The interface every model family provides to the stages: fit → per-epoch history, predict_proba →
an (n, K) matrix of class probabilities, and an atomic save into a directory that also records which
family it is and the names of its K classes."""

from __future__ import annotations

import json
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from sklearn.metrics import accuracy_score, log_loss

from imdbclf import crashpoints, selection, text
from imdbclf.data import BINARY, Split
from imdbclf.settings import Strict

FAMILY_FILE = "family.json"
TEMP_MARK = ".tmp-"  # `.<name>.tmp-*`: a save in progress (or killed) beside the model directory <name>
EpochLogger = Callable[[int, dict], None]


def predicted_labels(proba: np.ndarray) -> np.ndarray:
    """The class each row of an (n, K) probability matrix predicts: for two classes the second when its
    probability is at least 0.5 (ties to it, as the threshold always did), else the most probable."""
    proba = np.asarray(proba)
    if proba.shape[1] == 2:
        return (proba[:, 1] >= 0.5).astype(np.int64)
    return proba.argmax(axis=1).astype(np.int64)


def binary_matrix(positive: np.ndarray) -> np.ndarray:
    """P(second class) of a two-class model as the (n, 2) matrix every family returns."""
    positive = np.asarray(positive, dtype=np.float64).reshape(-1)
    return np.column_stack([1.0 - positive, positive])


def best_epoch(history: dict[str, list[float]], metric: str = "accuracy") -> int:
    """The one rule for "the best epoch" (0-based), used by early stopping, the restored weights, the
    reported metrics and the champion alike: the highest validation score of the selection metric
    (`imdbclf.selection`), ties to the lower validation loss, then to the earlier epoch."""
    score, loss = history[f"val_{metric}"], history["val_loss"]
    return max(range(len(score)), key=lambda i: (_ranked(score[i]), -loss[i], -i))


def _ranked(score: float) -> float:
    return -np.inf if np.isnan(score) else score


@dataclass(frozen=True)
class FitOptions:
    epochs: int
    seed: int = 0
    patience: int | None = None  # early stopping: stop after `patience` epochs without a new best epoch
    # A checkpoint per epoch; the best epoch's is restored after fit. A fit with the same inputs as the
    # interrupted one that wrote it resumes after its last complete epoch.
    checkpoint_dir: Path | None = None
    on_epoch_end: EpochLogger | None = None
    # what picks the best epoch (`imdbclf.selection`): the history also gets val_<metric>
    metric: str = "accuracy"
    # the loss's weight of each class index (`selection.class_weights`); None: every text counts the same
    class_weight: dict[int, float] | None = None
    verbose: int = 1  # 0: silent; otherwise a progress bar per epoch (a line per ~10% off a terminal)

    def sample_weights(self, labels: np.ndarray) -> np.ndarray | None:
        """`class_weight` as one weight per text, for a fit that takes sample weights (None: all equal)."""
        if self.class_weight is None:
            return None
        return np.array([self.class_weight.get(int(c), 1.0) for c in labels])


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
    # True: its saved model is data that loading cannot turn into code (JSON, arrays, skops with a list of
    # trusted types), so a copy that no digest vouches for may still be loaded
    loads_only_data: ClassVar[bool] = False

    def __init__(self, config: Strict):
        self.config = config
        # Where its settings are in params.yaml, for errors that name the key (`registry.create` sets it).
        self.where = "model"
        # Epochs that the last fit took from an interrupted run's checkpoints instead of training them.
        self.resumed_from_epoch = 0
        self.classes: tuple[str, ...] = BINARY  # the training split's class names (fit sets them)

    @abstractmethod
    def fit(self, train: Split, val: Split, hp: Strict, options: FitOptions) -> dict[str, list[float]]:
        """Train a fresh model; return per-epoch history (loss, accuracy, val_loss, val_accuracy).
        With a checkpoint_dir, the model left behind is the one of `best_epoch(history)`."""

    @abstractmethod
    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """An (n, K) matrix: each text's probability of each class (columns in `self.classes` order)."""

    @abstractmethod
    def trainable_params(self) -> int: ...

    def prepared(self, texts: Sequence[object]) -> list[str]:
        """The texts as this family reads them, in training and serving alike (`imdbclf.text`)."""
        return text.prepared(texts, self.config.normalize_text)

    def runtime(self) -> dict[str, str]:
        """What training resolves at run time and a result depends on (device, numeric precision)."""
        return {"device": "cpu", "precision": "float64"}

    def one_pass_history(self, train: Split, val: Split, options: FitOptions,
                         train_proba: np.ndarray | None = None) -> dict[str, list[float]]:
        """The history of a family that fits in one pass (a solver, not epochs): its one epoch's loss and
        accuracy on train and validation, handed to `options.on_epoch_end` as epoch 1. `train_proba`:
        the training reviews' predictions when the fit already has them (no second pass over them)."""
        history = {}
        for prefix, split, known in (("", train, train_proba), ("val_", val, None)):
            proba = self.predict_proba(split.texts) if known is None else known
            loss = log_loss(split.labels, proba[:, 1] if proba.shape[1] == 2 else proba,
                            labels=list(range(proba.shape[1])))
            history[f"{prefix}loss"] = [float(loss)]
            history[f"{prefix}accuracy"] = [float(accuracy_score(split.labels, predicted_labels(proba)))]
        history.update({k: [v] for k, v in selection.epoch_scores(val.labels, proba, [options.metric]).items()})
        if options.on_epoch_end:
            options.on_epoch_end(1, {k: v[0] for k, v in history.items()})
        return history

    def time_steps(self, train: Split, hp: Strict, steps: int) -> StepTiming | None:
        """Time a few training steps of a fresh model on `train`, leaving this family as it was, so that
        a stage can tell how long it would take before it starts (`imdbclf.ops.cpu_guard`); None: the family
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
            meta = {"family": self.name, "config": self.config.model_dump(), "classes": list(self.classes)}
            (tmp / FAMILY_FILE).write_text(json.dumps(meta, indent=2))
            crashpoints.reached(f"save:{path.parent.name}/{path.name}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if path.exists():  # a directory cannot be renamed onto a full one: move the old one aside first
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
