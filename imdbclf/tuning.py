"""The hyperparameter search: an Optuna study over a grid, explored one factor at a time or whole.

Trials are stored in a persistent Optuna study, each tagged with a *reuse key* — a hash of
everything a result depends on besides its own hyperparameters (data, the family's validated
settings, epochs, the code the trial runs, precision and device). A finished trial with the same
key and config is reused instead of retrained, so an interrupted tune resumes where it stopped,
and stale results are never reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from imdbclf import families, sources
from imdbclf.data import sha256_of
from imdbclf.errors import UserError
from imdbclf.families import Family
from imdbclf.params import ModelParams

TUNE_STAGE = Path("stages/tune.py")


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


def reuse_key(**depends_on: Any) -> str:
    return hashlib.sha256(json.dumps(depends_on, sort_keys=True, default=str).encode()).hexdigest()[:20]


def trial_key(family: Family, section: ModelParams, data_files: list[Path]) -> str:
    """Everything a trial's result depends on besides its hyperparameters: the data, the family's
    settings with defaults filled in (writing a default out changes nothing), the tuning budget, the
    code the trial runs (its family and what that imports, and the tune stage) and what training
    resolves at run time (device, precision: `mixed_precision: auto` differs on a GPU)."""
    code = sources.closure(families.family_module(section.family)) + [TUNE_STAGE]
    tune = section.tune
    return reuse_key(data=[sha256_of(path) for path in data_files], family=section.family,
                     model=family.config.model_dump(), epochs=tune.epochs, max_train=tune.max_train, seed=tune.seed,
                     code=sources.digest(code), runtime=family.runtime())


def grid_configs(grid: dict[str, list]) -> list[dict[str, Any]]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


@contextlib.contextmanager
def study_file_errors(path: Path) -> Iterator[None]:
    """Optuna reports a study file deleted mid-run as a failed commit "exceeding max length"; say
    what happened to which file instead."""
    try:
        yield
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as err:
        if not path.exists():
            raise UserError(f"{path}: the Optuna study file was deleted while tuning (by another process?); "
                            "run the stage again to start a new study") from None
        cause = str(getattr(err, "orig", None) or err.__cause__ or err).splitlines()[0]
        raise UserError(f"{path}: cannot write the Optuna study ({cause})") from None


def open_storage(path: Path) -> optuna.storages.BaseStorage:
    path.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(logging.WARNING)
    return optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}",
                                      engine_kwargs={"connect_args": {"timeout": 60}})


def open_study(storage: optuna.storages.BaseStorage, name: str, grid: dict[str, list]) -> optuna.Study:
    """The study of this grid; Optuna fixes a parameter's choices per study, so each grid gets its own
    study in the model's storage (finished trials are still found across all of them)."""
    space = hashlib.sha256(json.dumps(grid, sort_keys=True).encode()).hexdigest()[:8]
    return optuna.create_study(study_name=f"{name}-{space}", storage=storage, direction="maximize",
                               load_if_exists=True)


def finished_trials(storage: optuna.storages.BaseStorage, key: str) -> dict[str, optuna.trial.FrozenTrial]:
    """Completed trials with this reuse key in any study of the storage, by config: read once per run."""
    found = {}
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if trial.user_attrs.get("reuse_key") == key:
                found.setdefault(trial.user_attrs["config"], trial)
    return found


def config_label(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


class Search:
    """Runs configs through the study, reusing finished trials with the same key and config."""

    def __init__(self, study: optuna.Study, grid: dict[str, list], key: str, train: TrainFn,
                 finished: dict[str, optuna.trial.FrozenTrial] | None = None):
        self.study, self.grid, self.key, self.train = study, grid, key, train
        self.finished = dict(finished or {})
        self.results: dict[str, TrialResult] = {}

    def _ask(self, config: dict[str, Any]) -> optuna.trial.Trial:
        """The trial enqueued for `config`. Optuna hands out waiting trials oldest first, so one left
        by a process killed between enqueue and ask comes out first: it is failed, never trained
        under this config."""
        self.study.enqueue_trial(config, skip_if_exists=False)
        distributions = {k: CategoricalDistribution(v) for k, v in self.grid.items()}
        while True:
            trial = self.study.ask(distributions)
            if trial.params == config:
                return trial
            trial.set_user_attr("failed_because", "left waiting by a process that stopped before training it")
            self.study.tell(trial, state=TrialState.FAIL)

    def evaluate(self, config: dict[str, Any]) -> TrialResult:
        label = config_label(config)
        if label in self.results:
            return self.results[label]
        number = len(self.results)
        done = self.finished.get(label)
        if done is not None:
            result = TrialResult(
                number, config, done.value, done.user_attrs["val_loss"], done.user_attrs["seconds"],
                reused=True, mlflow_run_id=done.user_attrs.get("mlflow_run_id"),
                history=done.user_attrs.get("history", {}),
            )
        else:
            trial = self._ask(config)
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


def best_of(results: list[TrialResult]) -> TrialResult:
    """Highest validation accuracy; ties go to the lower validation loss, then the earlier trial."""
    return max(results, key=lambda r: (r.val_accuracy, -r.val_loss, -r.number))


def summary(strategy: str, results: list[TrialResult]) -> dict[str, Any]:
    trials = [{k: v for k, v in asdict(r).items() if k != "history"} for r in results]
    best = best_of(results)
    return {"strategy": strategy, "trials": trials,
            "best": {"config": best.config, "val_accuracy": best.val_accuracy, "val_loss": best.val_loss,
                     "trial": best.number}}
