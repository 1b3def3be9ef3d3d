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


def config_label(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def worker_label(worker: dict[str, Any]) -> str:
    """How a worker is named in trials, runs and lines: host:pid (device)."""
    return f"{worker['host']}:{worker['pid']} ({worker['device']})"


def record(trial: optuna.Trial, history: dict[str, list[float]], seconds: float) -> float:
    """Keep a trained (or pruned) trial's result on the trial: its best epoch's validation accuracy and
    loss, time and history; return the accuracy, the value Optuna maximises."""
    best = best_epoch(history)
    for name, value in (("val_accuracy", history["val_accuracy"][best]), ("val_loss", history["val_loss"][best]),
                        ("seconds", seconds), ("history", history)):
        trial.set_user_attr(name, value)
    return history["val_accuracy"][best]


def as_result(trial: FrozenTrial, reused: bool) -> TrialResult:
    attrs = trial.user_attrs
    history = attrs.get("history", {})
    worker = attrs.get("worker")
    return TrialResult(
        number=trial.number, config=json.loads(attrs["config"]), val_accuracy=attrs.get("val_accuracy", 0.0),
        val_loss=attrs.get("val_loss", float("nan")), seconds=attrs.get("seconds", 0.0), reused=reused,
        mlflow_run_id=attrs.get("mlflow_run_id"), history=history, state=trial.state.name,
        epochs=len(history.get("val_accuracy", [])),
        worker=worker_label(worker) if worker else None)


def best_of(results: list[TrialResult]) -> TrialResult:
    """Highest validation accuracy; ties go to the lower validation loss, then the earlier trial."""
    return max(results, key=lambda r: (r.val_accuracy, -r.val_loss, -r.number))
