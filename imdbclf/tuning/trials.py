"""A trial's result as the search and the stage's summary see it, read from (and recorded on) an
Optuna trial."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from imdbclf.families.base import best_epoch


@dataclass
class TrialResult:
    number: int
    config: dict[str, Any]
    val_accuracy: float
    val_loss: float
    seconds: float
    reused: bool = False
    mlflow_run_id: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict, repr=False)
    state: str = "COMPLETE"  # or PRUNED: stopped early as unpromising
    epochs: int = 0
    worker: str | None = None
    metric: str = "accuracy"  # the selection metric (`imdbclf.selection`) that val_score is
    val_score: float | None = None  # at the best epoch; None: val_accuracy (a trial recorded before metrics)

    @property
    def score(self) -> float:
        return self.val_accuracy if self.val_score is None else self.val_score


def config_label(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def worker_label(worker: dict[str, Any]) -> str:
    """How a worker is named in trials, runs and lines: host:pid (device)."""
    return f"{worker['host']}:{worker['pid']} ({worker['device']})"


def record(trial: optuna.Trial, history: dict[str, list[float]], seconds: float, metric: str = "accuracy") -> float:
    """Keep a trained (or pruned) trial's result on the trial: its best epoch's validation score of the
    selection metric, accuracy and loss, time and history; return the score, the value Optuna maximises."""
    best = best_epoch(history, metric)
    score = history[f"val_{metric}"][best]
    for name, value in (("val_accuracy", history["val_accuracy"][best]), ("val_loss", history["val_loss"][best]),
                        ("metric", metric), ("val_score", score), ("seconds", seconds), ("history", history)):
        trial.set_user_attr(name, value)
    return score


def as_result(trial: FrozenTrial, reused: bool) -> TrialResult:
    attrs = trial.user_attrs
    history = attrs.get("history", {})
    worker = attrs.get("worker")
    return TrialResult(
        number=trial.number, config=json.loads(attrs["config"]), val_accuracy=attrs.get("val_accuracy", 0.0),
        val_loss=attrs.get("val_loss", float("nan")), seconds=attrs.get("seconds", 0.0), reused=reused,
        mlflow_run_id=attrs.get("mlflow_run_id"), history=history, state=trial.state.name,
        epochs=len(history.get("val_accuracy", [])),
        worker=worker_label(worker) if worker else None, metric=attrs.get("metric", "accuracy"),
        val_score=attrs.get("val_score"))


def best_of(results: list[TrialResult]) -> TrialResult:
    """Highest validation score of the selection metric; ties go to the lower validation loss, then the
    earlier trial."""
    return max(results, key=lambda r: (r.score, -r.val_loss, -r.number))
