"""The hyperparameter search: an Optuna study over a grid, explored one factor at a time or whole.

Trials are stored in a persistent Optuna study, each tagged with a *reuse key* — a hash of
everything a result depends on besides its own hyperparameters (data, the family's settings,
epochs, code version). A finished trial with the same key and config is reused instead of
retrained, so an interrupted tune resumes where it stopped, and stale results are never reused.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

PACKAGE_DIR = Path(__file__).resolve().parent


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


# A function that trains one config and returns (val_accuracy, val_loss, seconds, mlflow_run_id, history).
TrainFn = Callable[[int, dict[str, Any]], tuple[float, float, float, str | None, dict]]


def code_version() -> str:
    """Hash of the package's source: a code change invalidates earlier trials."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def reuse_key(**depends_on: Any) -> str:
    return hashlib.sha256(json.dumps(depends_on, sort_keys=True, default=str).encode()).hexdigest()[:20]


def grid_configs(grid: dict[str, list]) -> list[dict[str, Any]]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def open_study(storage_file: Path, name: str, grid: dict[str, list]) -> optuna.Study:
    """The study of this grid; Optuna fixes a parameter's choices per study, so each grid gets its own
    study in the model's storage file (finished trials are still found across all of them)."""
    storage_file.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(logging.WARNING)
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{storage_file.resolve()}", engine_kwargs={"connect_args": {"timeout": 60}}
    )
    space = hashlib.sha256(json.dumps(grid, sort_keys=True).encode()).hexdigest()[:8]
    return optuna.create_study(study_name=f"{name}-{space}", storage=storage, direction="maximize",
                               load_if_exists=True)


class Search:
    """Runs configs through the study, reusing finished trials with the same key and config."""

    def __init__(self, study: optuna.Study, grid: dict[str, list], key: str, train: TrainFn):
        self.study, self.grid, self.key, self.train = study, grid, key, train
        self.results: dict[str, TrialResult] = {}

    def _finished(self, config: dict[str, Any]) -> optuna.trial.FrozenTrial | None:
        """A completed trial of this config and key, in any study of the storage."""
        wanted = json.dumps(config, sort_keys=True)
        storage = self.study._storage
        for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                if trial.user_attrs.get("reuse_key") == self.key and trial.user_attrs.get("config") == wanted:
                    return trial
        return None

    def evaluate(self, config: dict[str, Any]) -> TrialResult:
        label = json.dumps(config, sort_keys=True)
        if label in self.results:
            return self.results[label]
        number = len(self.results)
        done = self._finished(config)
        if done is not None:
            result = TrialResult(
                number, config, done.value, done.user_attrs["val_loss"], done.user_attrs["seconds"],
                reused=True, mlflow_run_id=done.user_attrs.get("mlflow_run_id"),
                history=done.user_attrs.get("history", {}),
            )
        else:
            self.study.enqueue_trial(config, skip_if_exists=False)
            trial = self.study.ask({k: CategoricalDistribution(v) for k, v in self.grid.items()})
            trial.set_user_attr("reuse_key", self.key)
            trial.set_user_attr("config", label)
            try:
                val_accuracy, val_loss, seconds, run_id, history = self.train(number, config)
            except BaseException:
                self.study.tell(trial, state=TrialState.FAIL)
                raise
            for name, value in (("val_loss", val_loss), ("seconds", seconds), ("mlflow_run_id", run_id),
                                ("history", history)):
                trial.set_user_attr(name, value)
            self.study.tell(trial, val_accuracy)
            result = TrialResult(number, config, val_accuracy, val_loss, seconds, False, run_id, history)
        self.results[label] = result
        return result

    def run(self, strategy: str) -> list[TrialResult]:
        if strategy == "grid":
            for config in grid_configs(self.grid):
                self.evaluate(config)
        else:  # ofat: the optimizer first, then batch size with the best optimizer, and so on
            best = {key: values[0] for key, values in self.grid.items()}
            for key, values in self.grid.items():
                phase = [self.evaluate({**best, key: value}) for value in values]
                best = best_of(phase).config
        return list(self.results.values())


def best_epoch(history: dict[str, list[float]]) -> int:
    """Index of the epoch with the best validation accuracy (the one early stopping would keep)."""
    accuracy = history["val_accuracy"]
    return max(range(len(accuracy)), key=lambda i: (accuracy[i], -history["val_loss"][i], -i))


def best_of(results: list[TrialResult]) -> TrialResult:
    """Highest validation accuracy; ties go to the lower validation loss, then the earlier trial."""
    return max(results, key=lambda r: (r.val_accuracy, -r.val_loss, -r.number))


def summary(strategy: str, results: list[TrialResult]) -> dict[str, Any]:
    trials = [{k: v for k, v in asdict(r).items() if k != "history"} for r in results]
    best = best_of(results)
    return {"strategy": strategy, "trials": trials,
            "best": {"config": best.config, "val_accuracy": best.val_accuracy, "val_loss": best.val_loss,
                     "trial": best.number}}
