"""The study queue: a search enqueues a phase's configs as WAITING trials of an Optuna study; a worker
pops one with `study.optimize(n_trials=1)`, which also records the heartbeat of a database storage and
fails the trials of workers that stopped beating (re-enqueued by `RetryHeartbeatStaleTrialCallback`).
On one machine a dead worker is known at once by its pid.

Each study's name holds the reuse key, so a worker (another process or machine) finds the studies it
may work on from its own key: with other data or code it joins none."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from imdbclf import processes
from imdbclf.settings.pipeline import TuningParams
from imdbclf.tuning.storage import experimental_ok
from imdbclf.tuning.trials import config_label

DONE = (TrialState.COMPLETE, TrialState.PRUNED)

PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}
GRID = "grid"  # study user attr: the grid a TPE study samples from
TPE_TRIALS = "tpe_trials"  # study user attr: how many finished trials a TPE study wants


def make_pruner(name: str, args: dict[str, Any]) -> optuna.pruners.BasePruner:
    return PRUNERS[name](**args)


def study_prefix(model: str, key: str) -> str:
    return f"{model}-{key}-"


def study_name(model: str, key: str, grid: dict[str, list], search: dict[str, Any]) -> str:
    """One study per model, reuse key, search space and search settings: Optuna fixes a parameter's
    choices per study, and pruning and TPE compare a study's trials with each other."""
    space = hashlib.sha256(json.dumps([grid, search], sort_keys=True).encode()).hexdigest()[:8]
    return f"{study_prefix(model, key)}{space}"


def open_study(storage: optuna.storages.BaseStorage, name: str,
               pruner: optuna.pruners.BasePruner | None = None,
               sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    return optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                               pruner=pruner, sampler=sampler)


def studies_of(storage: optuna.storages.BaseStorage, model: str, key: str) -> list[str]:
    prefix = study_prefix(model, key)
    return [name for name in optuna.get_all_study_names(storage) if name.startswith(prefix)]


def finished_trials(storage: optuna.storages.BaseStorage, model: str, key: str) -> dict[str, FrozenTrial]:
    """Completed trials with this reuse key in any study of the model, by config: shared by grids that
    overlap and by every experiment, worker and machine that uses the storage."""
    found = {}
    for name in studies_of(storage, model, key):
        study = optuna.load_study(study_name=name, storage=storage)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if trial.user_attrs.get("reuse_key") == key:
                found.setdefault(trial.user_attrs["config"], trial)
    return found


def worker_identity(device: str) -> dict[str, Any]:
    """How a worker is recorded on the trials it trains: its process (host, pid, start time) and device."""
    return {**processes.identity(), "device": device}


def is_dead_here(worker: dict[str, Any] | None) -> bool:
    """A worker on this host whose process is gone."""
    if not worker or worker.get("host") != processes.host():
        return False
    return not processes.is_alive(worker["pid"], worker["started"])


def fail_dead_trials(study: optuna.Study, settings: TuningParams,
                     on_failed: Callable[[FrozenTrial], None] | None = None) -> list[int]:
    """Fail the RUNNING trials whose worker died — at once for a dead pid on this host, after the grace
    period without a heartbeat elsewhere (database storages) — and enqueue each again, up to
    `tuning.max_retry` times, so that a live worker trains it."""
    with experimental_ok():
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(settings.max_retry)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_dead_here(trial.user_attrs.get("worker")):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
                study.tell(trial.number, state=TrialState.FAIL)
                retry(study, trial)
                failed.append(trial.number)
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    with experimental_ok():
        optuna.storages.fail_stale_trials(study)  # heartbeats: a no-op for the journal file
    failed += sorted({t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))} - before
                     - set(failed))
    if on_failed:
        for number in failed:
            on_failed(study.trials[number])
    return failed


class NotQueued(Exception):
    """A trial that no search queued (e.g. left by a process that stopped between enqueue and ask)."""


class Worker:
    """Pops waiting trials with this worker's reuse key and trains them with `train(trial, config)`.

    Each trial goes through `study.optimize(n_trials=1)`: Optuna pops the oldest waiting trial, records
    its heartbeat on a database storage, fails the trials of workers whose heartbeat stopped first,
    and tells the result (or FAIL, PRUNED) at the end.
    """

    def __init__(self, key: str, identity: dict[str, Any], train: Callable[[optuna.Trial, dict[str, Any]], float]):
        self.key, self.identity, self.train = key, identity, train

    def objective(self, trial: optuna.Trial) -> float:
        tpe = trial.study.user_attrs.get(TPE_TRIALS) is not None
        if not tpe and (trial.user_attrs.get("reuse_key") != self.key or "config" not in trial.user_attrs):
            trial.set_user_attr("error", "left waiting by a process that stopped before training it")
            raise NotQueued(trial.number)
        # the queued config (fixed by enqueue_trial) or, in a TPE study, the sampler's choice
        config = {key: trial.suggest_categorical(key, values) for key, values in trial.study.user_attrs[GRID].items()}
        if tpe:
            trial.set_user_attr("reuse_key", self.key)
            trial.set_user_attr("config", config_label(config))
        trial.set_user_attr("worker", self.identity)
        try:
            return self.train(trial, config)
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            raise

    def has_work(self, study: optuna.Study) -> bool:
        trials = study.get_trials(deepcopy=False)
        wanted = study.user_attrs.get(TPE_TRIALS)
        if wanted is not None:
            mine = [t for t in trials if t.user_attrs.get("reuse_key") == self.key]
            return sum(t.state in (*DONE, TrialState.RUNNING) for t in mine) < wanted
        return any(t.state == TrialState.WAITING for t in trials)

    def run_one(self, study: optuna.Study) -> bool:
        """Train one waiting trial of `study` (a TPE study: sample one); False when there is none."""
        if not self.has_work(study):
            return False
        study.optimize(self.objective, n_trials=1, catch=(NotQueued,), gc_after_trial=False)
        return True

    def serve(self, storage: optuna.storages.BaseStorage, model: str, open_study: Callable[[str], optuna.Study],
              reconcile: Callable[[optuna.Study], None], poll_s: float, idle_exit_s: float) -> None:
        """Train the waiting trials of the model's studies with this worker's key until none has come
        for `idle_exit_s` seconds (what `tune-worker` and the tune stage's local workers do)."""
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < idle_exit_s:
            for name in studies_of(storage, model, self.key):
                study = open_study(name)
                reconcile(study)
                if self.run_one(study):
                    idle_since = time.monotonic()
                    break
            else:
                time.sleep(poll_s)
