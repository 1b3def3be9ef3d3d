"""Workers train the waiting trials of a model's studies: in the tune stage's own process, in local
worker processes that the stage starts (`tune.workers`), or as `python -m imdbclf tune-worker <model>`
on any machine pointed at the same tuning storage and MLflow server, with the same data and code.

A worker computes the reuse key from its own params, data and code and joins only the studies named
with that key, so it never trains a trial under settings other than the ones it was queued with.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import optuna

from imdbclf import crashpoints, families, outputs, tracking
from imdbclf.data import load_split
from imdbclf.families import Family, FitOptions
from imdbclf.params import Params
from imdbclf.tuning.queue import Worker, fail_dead_trials, make_pruner, open_study, worker_identity
from imdbclf.tuning.reuse import trial_key
from imdbclf.tuning.search import Search
from imdbclf.tuning.search import trials_to_train as count_to_train
from imdbclf.tuning.storage import shown, storage_errors
from imdbclf.tuning.trials import TrialResult, record, worker_label

PARENT_RUN = "mlflow_parent_run_id"  # study user attr: the tune stage run that a trial's run belongs under


class TrialRunner:
    """Trains one trial of a model: its config, per-epoch metrics reported to Optuna (for pruning) and to
    MLflow (a child run of the tune stage's run, naming the worker), the result kept on the trial."""

    def __init__(self, p: Params, model: str, storage: optuna.storages.BaseStorage):
        self.p, self.model, self.storage = p, model, storage
        self.section = p.model(model)
        tune = self.section.tune
        self.train = load_split("train").subsample(tune.max_train, tune.seed, f"{model}.tune.max_train")
        self.val = load_split("val")
        self.datasets = tracking.split_datasets(self.train, self.val)  # each trial's run logs them as inputs
        self.family: Family = families.create(model, self.section)
        self.key = trial_key(self.family, self.section, [outputs.prepared("train"), outputs.prepared("val")])
        self.identity = worker_identity(self.family.runtime().get("device", "cpu"))
        self.settings = p.tuning
        self.queue = Worker(self.key, self.identity, self._train)

    @property
    def worker(self) -> str:
        return worker_label(self.identity)

    def open(self, name: str) -> optuna.Study:
        tune = self.section.tune
        return open_study(self.storage, name, make_pruner(tune.pruner, tune.pruner_args),
                                 optuna.samplers.TPESampler(seed=tune.seed) if tune.strategy == "tpe" else None)

    def run_one(self, study: optuna.Study) -> bool:
        return self.queue.run_one(study)

    def _train(self, trial: optuna.Trial, config: dict[str, Any]) -> float:
        hp = families.hyperparameters(self.model, self.section, config)
        history: dict[str, list[float]] = {}  # so far: what a pruned trial reached

        def on_epoch_end(epoch: int, values: dict) -> None:
            tracking.log_metrics_at_step(epoch, values)
            for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
                history.setdefault(name, []).append(float(values[name]))
            trial.report(float(values["val_accuracy"]), epoch)
            crashpoints.reached(f"tune@{self.model}.trial{trial.number}.epoch{epoch}")
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        tags = {"trial": str(trial.number), "worker": self.worker}
        parent = trial.study.user_attrs.get(PARENT_RUN)
        pruned = None
        with tracking.trial_run(f"{self.model}-trial-{trial.number}", parent, tags) as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            tracking.log_params(config)
            tracking.log_datasets(self.datasets)
            print(f"tune@{self.model}: trial {trial.number} {config} on {self.worker}")
            started = time.perf_counter()
            try:
                history = self.family.fit(self.train, self.val, hp, FitOptions(
                    epochs=self.section.tune.epochs, seed=self.section.tune.seed, on_epoch_end=on_epoch_end))
            except optuna.TrialPruned as err:
                pruned = err
            seconds = time.perf_counter() - started
            crashpoints.reached(f"tune@{self.model}.trial{trial.number}")
            accuracy = record(trial, history, seconds)
            best = families.best_epoch(history)
            tracking.log_metrics({"best_val_accuracy": accuracy, "best_val_loss": history["val_loss"][best],
                                  "best_epoch": best + 1, "seconds": seconds})
            if pruned:
                tracking.set_tag("optuna.state", "PRUNED")
                tracking.log_metrics({"pruned_at_epoch": len(history["val_accuracy"])})
                print(f"tune@{self.model}: trial {trial.number} {pruned}")
        if pruned:
            raise pruned
        return accuracy


def reconcile(runner: TrialRunner, study: optuna.Study) -> None:
    """Fail and re-enqueue the trials of dead workers, and close their MLflow runs."""

    def close_run(trial) -> None:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id:
            tracking.mark_killed(run_id, f"worker {trial.user_attrs.get('worker')} stopped during the trial")
        print(f"tune@{runner.model}: trial {trial.number} lost its worker; queued again")

    fail_dead_trials(study, runner.settings, close_run)


def serve(runner: TrialRunner, idle_exit_s: float) -> None:
    """The loop of `tune-worker`."""
    runner.queue.serve(runner.storage, runner.model, runner.open, lambda study: reconcile(runner, study),
                       runner.settings.poll_s, idle_exit_s)


def local_worker_count(setting: int | str, gpus: int) -> int:
    """`tune.workers`: a number, or auto — one per GPU, one on a CPU-only machine."""
    return max(1, gpus) if setting == "auto" else int(setting)


def start_local_workers(model: str, count: int, gpus: int, idle_exit_s: float) -> list[subprocess.Popen]:
    """`count` worker processes on this machine, each on its own GPU (CUDA_VISIBLE_DEVICES) or, on a
    CPU, with its share of the cores, so that they do not oversubscribe the machine."""
    threads = str(max(1, (os.cpu_count() or 1) // count))
    procs = []
    for i in range(count):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(i % gpus)} if gpus else None
        procs.append(subprocess.Popen([sys.executable, "-m", "imdbclf", "tune-worker", model, "--idle-exit",
                                       str(idle_exit_s), *([] if gpus else ["--threads", threads])], env=env))
    return procs


def search(runner: TrialRunner, url: str, parent_run_id: str) -> list[TrialResult]:
    """Run the model's search (`tune.strategy`) to the end: with one worker the trials train in this
    process; with several (`tune.workers`), local worker processes train them while this one waits.
    Each trial's MLflow run is filed under `parent_run_id`, the tune stage's run."""
    tune = runner.section.tune
    gpus = int(runner.family.runtime().get("gpus", 0))
    count = local_worker_count(tune.workers, gpus)
    local = start_local_workers(runner.model, count, gpus, runner.settings.worker_idle_exit_s) if count > 1 else []
    print(f"tune@{runner.model}: {tune.strategy} search, {count} local worker(s), studies in {shown(url)}")

    def on_phase(study: optuna.Study) -> None:  # workers file their trials' runs under the stage's run
        study.set_user_attr(PARENT_RUN, parent_run_id)

    def work(study: optuna.Study) -> bool:  # one worker: train here; several: they train while this waits
        return runner.run_one(study) if all(proc.poll() is not None for proc in local) else False

    try:
        with storage_errors(url):
            return Search(runner.storage, runner.model, runner.key, tune.grid, runner.settings, work,
                          lambda study: reconcile(runner, study), tune.pruner, tune.pruner_args, tune.n_trials,
                          tune.seed, on_phase).run(tune.strategy)
    finally:
        for proc in local:
            proc.terminate()
        for proc in local:
            proc.wait()


def trials_to_train(runner: TrialRunner, url: str) -> int:
    """About how many trials the search still has to train (what the CPU-time guard multiplies out)."""
    tune = runner.section.tune
    with storage_errors(url):
        return count_to_train(runner.storage, runner.model, runner.key, tune.strategy, tune.grid, tune.n_trials)
