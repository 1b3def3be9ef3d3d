"""The hyperparameter search: Optuna studies in a storage shared by every experiment, worker and
machine, explored one factor at a time, as a full grid, or by TPE; trials trained by any number of
workers, pruned when unpromising, retried when their worker dies.

Each trial carries a *reuse key* — a hash of everything its result depends on besides its own
hyperparameters (data, the family's validated settings, epochs, the code the trial runs, precision
and device). A finished trial with the same key and config is reused instead of retrained, so an
interrupted tune resumes where it stopped, a queued experiment reuses the workspace's trials, and
stale results are never reused. The key is part of each study's name, so a worker (another process
or machine) finds the studies it may work on from its own key: with other data or code it joins none.

The queue is Optuna's own: a stage enqueues the configs of a phase (OFAT works phase by phase; a
grid is one phase) as WAITING trials; a worker pops one with `study.optimize(n_trials=1)`, which
also records the heartbeat of a database storage and fails the trials of workers that stopped
beating (re-enqueued by `RetryHeartbeatStaleTrialCallback`). On one machine a dead worker is known
at once by its pid.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import psutil
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from imdbclf import families, sources
from imdbclf.data import sha256_of
from imdbclf.errors import UserError
from imdbclf.families import Family
from imdbclf.params import ModelParams, TuningParams
from imdbclf.paths import project_root

TRIAL_CODE = Path("imdbclf/workers.py")  # runs a trial: part of the reuse key, with the family's code
STORAGE_ENV = "IMDBCLF_TUNING_STORAGE"
DEFAULT_JOURNAL = "optuna.journal"
DONE = (TrialState.COMPLETE, TrialState.PRUNED)
# heartbeats, their retry callback and fail_stale_trials are "experimental" in Optuna since 2.8: we rely on them
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}


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


def reuse_key(**depends_on: Any) -> str:
    return hashlib.sha256(json.dumps(depends_on, sort_keys=True, default=str).encode()).hexdigest()[:20]


def trial_key(family: Family, section: ModelParams, data_files: list[Path]) -> str:
    """Everything a trial's result depends on besides its hyperparameters: the data, the family's
    settings with defaults filled in (writing a default out changes nothing), the tuning budget, the
    code the trial runs (its family and what that imports, and the trial runner) and what training
    resolves at run time (device, precision: `mixed_precision: auto` differs on a GPU)."""
    code = sources.closure(families.family_module(section.family)) + [TRIAL_CODE]
    tune = section.tune
    return reuse_key(data=[sha256_of(path) for path in data_files], family=section.family,
                     model=family.config.model_dump(), epochs=tune.epochs, max_train=tune.max_train, seed=tune.seed,
                     code=sources.digest(code), runtime=family.runtime())


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


def config_label(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


# ---------------------------------------------------------------- storage


def storage_url(settings: TuningParams) -> str:
    """$IMDBCLF_TUNING_STORAGE, else `tuning.storage`, else a journal file at the repository root that
    every experiment of the repo shares (queued experiments run in temp copies of it)."""
    return os.environ.get(STORAGE_ENV) or settings.storage or str(project_root() / DEFAULT_JOURNAL)


def is_database(url: str) -> bool:
    return "://" in url


def shown(url: str) -> str:
    """The storage as printed and logged: a database URL without its password."""
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True) if is_database(url) else url


def open_storage(url: str, settings: TuningParams) -> optuna.storages.BaseStorage:
    """A database URL (postgresql://… for several machines) gets Optuna's heartbeat and retries;
    a file path gets a JournalStorage, made for several processes on one machine."""
    optuna.logging.set_verbosity(logging.ERROR)  # a failed trial is reported by the stage, once
    if is_database(url):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=settings.heartbeat_interval_s,
                grace_period=settings.grace_period_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(settings.max_retry))
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as err:
            raise UserError(f"tuning.storage {shown(url)}: cannot open it ({str(err).splitlines()[0]})") from None
    path = Path(url).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def _file_identity(path: Path | None) -> tuple[int, int] | None:
    try:
        stat = path.stat() if path else None
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino) if stat else None


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Optuna reports a study file deleted mid-run as a failed commit "exceeding max length" (SQLite) or
    a trial in an impossible state (journal); say what happened to which storage instead. Enter it
    once the storage is open."""
    journal = None if is_database(url) else Path(url)
    identity = _file_identity(journal)
    try:
        yield
    except Exception as err:
        if journal and _file_identity(journal) != identity:  # gone, or recreated: its replay fails in many ways
            raise UserError(f"{url}: the Optuna study file was deleted while tuning (by another process?); "
                            "run the stage again to start a new study") from None
        if not isinstance(err, (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)):
            raise
        cause = str(getattr(err, "orig", None) or err.__cause__ or err).splitlines()[0]
        raise UserError(f"{shown(url)}: cannot write the Optuna study ({cause})") from None


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


def trials_to_train(storage: optuna.storages.BaseStorage, model: str, key: str, strategy: str,
                    grid: dict[str, list], n_trials: int | None) -> int:
    """About how many trials a search still has to train: the planned ones less the configs of the grid
    that a trial with this key already completed (reused, not trained again; TPE draws its own)."""
    planned = planned_trials(strategy, grid, n_trials)
    if strategy == "tpe":
        return planned
    done = [json.loads(label) for label in finished_trials(storage, model, key)]
    in_grid = sum(all(config.get(k) in values for k, values in grid.items()) for config in done)
    return max(planned - in_grid, 0)


def record(trial: optuna.Trial, history: dict[str, list[float]], seconds: float) -> float:
    """Keep a trained (or pruned) trial's result on the trial: its best epoch's validation accuracy and
    loss, time and history; return the accuracy, the value Optuna maximises."""
    best = families.best_epoch(history)
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
        worker=f"{worker['host']}:{worker['pid']} ({worker['device']})" if worker else None)


# ---------------------------------------------------------------- dead workers


def worker_identity(device: str) -> dict[str, Any]:
    me = psutil.Process()
    return {"host": os.uname().nodename, "pid": me.pid, "started": round(me.create_time(), 3), "device": device}


def is_dead_here(identity: dict[str, Any] | None) -> bool:
    """A worker on this host whose process is gone (a recycled pid has another start time)."""
    if not identity or identity.get("host") != os.uname().nodename:
        return False
    try:
        process = psutil.Process(identity["pid"])
        return abs(process.create_time() - identity["started"]) >= 1.0 or process.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def fail_dead_trials(study: optuna.Study, settings: TuningParams,
                     on_failed: Callable[[FrozenTrial], None] | None = None) -> list[int]:
    """Fail the RUNNING trials whose worker died — at once for a dead pid on this host, after the grace
    period without a heartbeat elsewhere (database storages) — and enqueue each again, up to
    `tuning.max_retry` times, so that a live worker trains it."""
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(settings.max_retry)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_dead_here(trial.user_attrs.get("worker")):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
                study.tell(trial.number, state=TrialState.FAIL)
                retry(study, trial)
                failed.append(trial.number)
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    optuna.storages.fail_stale_trials(study)  # heartbeats: a no-op for the journal file
    failed += sorted({t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))} - before
                     - set(failed))
    if on_failed:
        for number in failed:
            on_failed(study.trials[number])
    return failed


# ---------------------------------------------------------------- workers

GRID = "grid"  # study user attr: the grid a TPE study samples from
TPE_TRIALS = "tpe_trials"  # study user attr: how many finished trials a TPE study wants


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


# ---------------------------------------------------------------- the search


class Search:
    """Puts a strategy's configs into the model's studies and waits until workers have trained them.

    `work(study)` makes progress on one study's queue: trains one waiting trial in this process (and
    returns True), or returns False when there is none to train here, e.g. while other workers train
    them; `reconcile(study)` fails and re-enqueues the trials of dead workers.
    """

    def __init__(self, storage: optuna.storages.BaseStorage, model: str, key: str, grid: dict[str, list],
                 settings: TuningParams, work: Callable[[optuna.Study], bool],
                 reconcile: Callable[[optuna.Study], None], pruner: str = "none",
                 pruner_args: dict[str, Any] | None = None, n_trials: int | None = None, seed: int = 0,
                 on_phase: Callable[[optuna.Study], None] | None = None):
        self.storage, self.model, self.key, self.grid, self.settings = storage, model, key, grid, settings
        self.work, self.reconcile, self.on_phase = work, reconcile, on_phase
        self.pruner = (pruner, dict(pruner_args or {}))
        self.n_trials, self.seed = n_trials, seed
        self.results: dict[str, TrialResult] = {}

    def study(self, search: dict[str, Any], sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
        name = study_name(self.model, self.key, self.grid, {"pruner": self.pruner, **search})
        study = open_study(self.storage, name, make_pruner(*self.pruner), sampler)
        study.set_user_attr(GRID, self.grid)
        if self.on_phase:
            self.on_phase(study)
        return study

    def run(self, strategy: str) -> list[TrialResult]:
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

    def tpe(self) -> None:
        """TPE over the grid's values as categorical choices: workers ask the sampler until the study
        holds `tune.n_trials` finished trials with this key."""
        sampler = optuna.samplers.TPESampler(seed=self.seed)
        study = self.study({"strategy": "tpe", "n_trials": self.n_trials, "seed": self.seed}, sampler)
        study.set_user_attr(TPE_TRIALS, self.n_trials)
        while True:
            self.reconcile(study)
            done = [t for t in study.get_trials(deepcopy=False, states=DONE)
                    if t.user_attrs.get("reuse_key") == self.key]
            if len(done) >= self.n_trials:
                break
            self._check_failures(study, {t.user_attrs.get("config") for t in study.get_trials(deepcopy=False)})
            if not self.work(study):
                time.sleep(self.settings.poll_s)
        for trial in sorted(done, key=lambda t: t.number)[: self.n_trials]:
            result = as_result(trial, reused=False)
            self.results.setdefault(config_label(result.config), result)


def best_of(results: list[TrialResult]) -> TrialResult:
    """Highest validation accuracy; ties go to the lower validation loss, then the earlier trial."""
    return max(results, key=lambda r: (r.val_accuracy, -r.val_loss, -r.number))


def summary(strategy: str, results: list[TrialResult]) -> dict[str, Any]:
    trials = [{k: v for k, v in asdict(r).items() if k != "history"} for r in results]
    best = best_of([r for r in results if r.state == "COMPLETE"] or results)
    epochs = sum(r.epochs for r in results if not r.reused)
    return {"strategy": strategy, "trials": trials, "epochs_trained": epochs,
            "pruned": sum(r.state == "PRUNED" for r in results),
            "best": {"config": best.config, "val_accuracy": best.val_accuracy, "val_loss": best.val_loss,
                     "trial": best.number}}
