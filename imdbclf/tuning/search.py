"""The search strategies: one factor at a time (OFAT: the optimizer first, then batch size with the
best optimizer, and so on), the full grid, or TPE over the grid's values; and the tune stage's summary."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry
from optuna.trial import FrozenTrial, TrialState

from imdbclf.errors import UserError
from imdbclf.settings.pipeline import TuneParams, TuningParams
from imdbclf.tuning.queue import DONE, GRID, TPE_TRIALS, finished_trials, make_pruner, open_study, study_name
from imdbclf.tuning.storage import experimental_ok
from imdbclf.tuning.trials import TrialResult, as_result, best_of, config_label


def grid_configs(grid: dict[str, list]) -> list[dict[str, Any]]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def planned_trials(strategy: str, grid: dict[str, list], n_trials: int | None) -> int:
    """How many configs a search trains at most (reused and pruned trials cost less): a grid's product;
    OFAT's first phase, then each later phase less the config that the best so far already is; TPE's n_trials."""
    if strategy == "grid":
        return len(grid_configs(grid))
    if strategy == "tpe":
        return int(n_trials or 0)
    sizes = [len(values) for values in grid.values()]
    return sizes[0] + sum(size - 1 for size in sizes[1:])


def count_trials_to_train(storage: optuna.storages.BaseStorage, model: str, key: str, strategy: str,
                    grid: dict[str, list], n_trials: int | None) -> int:
    """About how many trials a search still has to train: the planned ones less the configs of the grid
    that a trial with this key already completed (reused, not trained again; TPE draws its own)."""
    planned = planned_trials(strategy, grid, n_trials)
    if strategy == "tpe":
        return planned
    done = [json.loads(label) for label in finished_trials(storage, model, key)]
    in_grid = sum(all(config.get(k) in values for k, values in grid.items()) for config in done)
    return max(planned - in_grid, 0)


class Search:
    """Puts a strategy's configs into the model's studies and waits until workers have trained them.

    `work(study)` makes progress on one study's queue: trains one waiting trial in this process (and
    returns True), or returns False when there is none to train here, e.g. while other workers train
    them; `reconcile(study)` fails and re-enqueues the trials of dead workers.
    """

    def __init__(self, storage: optuna.storages.BaseStorage, model: str, key: str, tune: TuneParams,
                 settings: TuningParams, *, work: Callable[[optuna.Study], bool],
                 reconcile: Callable[[optuna.Study], None], on_phase: Callable[[optuna.Study], None] | None = None):
        self.storage, self.model, self.key, self.tune, self.settings = storage, model, key, tune, settings
        self.grid = tune.grid
        self.work, self.reconcile, self.on_phase = work, reconcile, on_phase
        self.pruner = (tune.pruner, dict(tune.pruner_args))
        self.n_trials, self.seed = tune.n_trials, tune.seed
        self.results: dict[str, TrialResult] = {}

    def study(self, search: dict[str, Any], sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
        name = study_name(self.model, self.key, self.grid, {"pruner": self.pruner, **search})
        study = open_study(self.storage, name, make_pruner(*self.pruner), sampler)
        study.set_user_attr(GRID, self.grid)
        if self.on_phase:
            self.on_phase(study)
        return study

    def run(self) -> list[TrialResult]:
        """The search of `tune.strategy`, to the end: every trial's result."""
        strategy = self.tune.strategy
        if strategy == "grid":
            self.phase(grid_configs(self.grid))
        elif strategy == "tpe":
            self.tpe()
        else:  # ofat: the optimizer first, then batch size with the best optimizer, and so on
            best = {key: values[0] for key, values in self.grid.items()}
            for key, values in self.grid.items():
                phase = self.phase([{**best, key: value} for value in values])
                completed = [r for r in phase if r.state == "COMPLETE"]
                if not completed:
                    raise UserError(f"{self.model}: every trial of the {key} phase was pruned: nothing to "
                                    f"choose from (use a gentler {self.model}.tune.pruner)")
                best = best_of(completed).config
        return list(self.results.values())

    def phase(self, configs: list[dict[str, Any]]) -> list[TrialResult]:
        """Enqueue the configs that no trial has finished yet and wait until every one is done."""
        study = self.study({"strategy": "queue"})
        labels = [config_label(c) for c in configs]
        reused = finished_trials(self.storage, self.model, self.key)
        self.reconcile(study)
        queued = {t.user_attrs.get("config") for t in study.get_trials(
            deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING, TrialState.PRUNED))}
        for config, label in zip(configs, labels):
            if label not in reused and label not in queued:
                study.enqueue_trial(config, user_attrs={"reuse_key": self.key, "config": label})
        while True:
            done = self._done(study, reused)
            if all(label in done for label in labels):
                break
            self._check_failures(study, set(labels) - set(done))
            if not self.work(study):
                time.sleep(self.settings.poll_s)
                self.reconcile(study)
        phase = [done[label] for label in labels]
        for result in phase:
            self.results.setdefault(config_label(result.config), result)
        return phase

    def _done(self, study: optuna.Study, reused: dict[str, FrozenTrial]) -> dict[str, TrialResult]:
        done = {label: as_result(trial, reused=True) for label, trial in reused.items()}
        for trial in study.get_trials(deepcopy=False, states=DONE):
            if trial.user_attrs.get("reuse_key") == self.key and "config" in trial.user_attrs:
                done.setdefault(trial.user_attrs["config"], as_result(trial, reused=False))
        return done

    def _check_failures(self, study: optuna.Study, pending: set[str]) -> None:
        """A config whose trial failed for good (an error, or its worker died too often) stops the search."""
        trials = study.get_trials(deepcopy=False)
        alive = {t.user_attrs.get("config") for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)}
        for trial in trials:
            label = trial.user_attrs.get("config")
            if trial.state == TrialState.FAIL and label in pending and label not in alive:
                reason = trial.user_attrs.get("error", "its worker stopped and the retries ran out")
                raise UserError(f"{self.model}: trial {trial.number} {label} failed: {reason}")

    def _retry_interrupted(self, study: optuna.Study) -> None:
        """Queue again, with its config, a TPE trial that Ctrl-C or SIGTERM stopped (FAIL without an error,
        its process gone), as grid and OFAT queue a failed config again: a killed search resumes where it
        stopped instead of failing on it. Trials of dead workers are already retried by `reconcile`."""
        trials = study.get_trials(deepcopy=False)
        with experimental_ok():
            retried = {number for trial in trials for number in Retry.retry_history(trial)}
            retry = Retry(self.settings.max_retry)
        for trial in trials:
            if (trial.state == TrialState.FAIL and "error" not in trial.user_attrs and trial.number not in retried
                    and trial.user_attrs.get("reuse_key") == self.key):
                retry(study, trial)

    def tpe(self) -> None:
        """TPE over the grid's values as categorical choices: workers ask the sampler until the study
        holds `tune.n_trials` finished trials with this key."""
        sampler = optuna.samplers.TPESampler(seed=self.seed)
        study = self.study({"strategy": "tpe", "n_trials": self.n_trials, "seed": self.seed}, sampler)
        study.set_user_attr(TPE_TRIALS, self.n_trials)
        while True:
            self.reconcile(study)
            self._retry_interrupted(study)
            done = [t for t in study.get_trials(deepcopy=False, states=DONE)
                    if t.user_attrs.get("reuse_key") == self.key]
            if len(done) >= self.n_trials:
                break
            errors = {t.user_attrs.get("config") for t in study.get_trials(deepcopy=False) if "error" in t.user_attrs}
            self._check_failures(study, errors)
            if not self.work(study):
                time.sleep(self.settings.poll_s)
        for trial in sorted(done, key=lambda t: t.number)[: self.n_trials]:
            result = as_result(trial, reused=False)
            self.results.setdefault(config_label(result.config), result)


def best_choice(key: str, results: list[TrialResult]) -> dict[str, Any]:
    """What retrain depends on: the chosen config, the reuse key of the trials it was chosen from and its
    validation scores; nothing that changes from run to run (times, workers, run ids, reuse) — so a tune
    that only reuses its trials leaves it byte for byte the same, and DVC reruns no retrain."""
    best = best_of([r for r in results if r.state == "COMPLETE"] or results)
    return {"config": best.config, "trial_key": key, "metric": best.metric, "val_score": best.score,
            "val_accuracy": best.val_accuracy, "val_loss": best.val_loss}


def search_summary(strategy: str, results: list[TrialResult]) -> dict[str, Any]:
    trials = [{k: v for k, v in asdict(r).items() if k != "history"} for r in results]
    best = best_of([r for r in results if r.state == "COMPLETE"] or results)
    epochs = sum(r.epochs for r in results if not r.reused)
    return {"strategy": strategy, "trials": trials, "epochs_trained": epochs,
            "pruned": sum(r.state == "PRUNED" for r in results),
            "best": {"config": best.config, "metric": best.metric, "val_score": best.score,
                     "val_accuracy": best.val_accuracy, "val_loss": best.val_loss, "trial": best.number}}
