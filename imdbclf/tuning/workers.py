"""Workers train the waiting trials of a model's studies: in the tune stage's own process, in local
worker processes that the stage starts (`tune.workers`), or as `python -m imdbclf tune-worker <model>`
on any machine pointed at the same tuning storage and MLflow server, with the same data and code.

A worker computes the reuse key from its own params, data and code and joins only the studies named
with that key, so it never trains a trial under settings other than the ones it was queued with.
"""

from __future__ import annotations

import time
from typing import Any

import optuna

from imdbclf import crashpoints, families, outputs, selection, sizing, tracking
from imdbclf.data import load_split
from imdbclf.families import Family, FitOptions
from imdbclf.params import Params
from imdbclf.tuning.queue import Worker, fail_dead_trials, make_pruner, open_study, worker_identity
from imdbclf.tuning.reuse import trial_key
from imdbclf.tuning.trials import record, worker_label

PARENT_RUN = "mlflow_parent_run_id"  # study user attr: the tune stage run that a trial's run belongs under


class TrialRunner:
    """Trains one trial of a model: its config, per-epoch metrics reported to Optuna (for pruning) and to
    MLflow (a child run of the tune stage's run, naming the worker), the result kept on the trial."""

    def __init__(self, p: Params, model: str, storage: optuna.storages.BaseStorage):
        self.p, self.model, self.storage = p, model, storage
        self.section = p.model(model)
        tune = self.section.tune
        full = load_split("train")
        self.train = full.subsample(tune.max_train, tune.seed, f"{model}.tune.max_train")
        self.val = load_split("val")
        self.metric = selection.metric(p.selection, full.class_counts())  # as retrain, evaluate and report
        self.datasets = tracking.split_datasets(self.train, self.val)  # each trial's run logs them as inputs
        self.family: Family = families.create(model, self.section)
        self.key = trial_key(self.family, self.section, [outputs.prepared_file("train"), outputs.prepared_file("val")],
                             p.selection, p.sizing)
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
        hp, epochs = sizing.sized(families.hyperparameters(self.model, self.section, config), self.section.tune.epochs,
                                  len(self.train), self.p.sizing)
        weights = selection.class_weights(hp.class_weight, self.train.class_counts(), self.p.selection)
        history: dict[str, list[float]] = {}  # so far: what a pruned trial reached
        score = selection.val_key(self.metric)

        def on_epoch_end(epoch: int, values: dict) -> None:
            tracking.log_metrics_at_step(epoch, values)
            for name in dict.fromkeys(("loss", "accuracy", "val_loss", "val_accuracy", score)):
                history.setdefault(name, []).append(float(values[name]))
            trial.report(float(values[score]), epoch)
            crashpoints.reached(f"tune@{self.model}.trial{trial.number}.epoch{epoch}")
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        tags = {"trial": str(trial.number), "worker": self.worker}
        parent = trial.study.user_attrs.get(PARENT_RUN)
        pruned = None
        with tracking.trial_run(f"{self.model}-trial-{trial.number}", parent, tags) as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            tracking.log_params({**config, **sizing.resolved(hp, epochs)})
            tracking.log_datasets(self.datasets)
            print(f"tune@{self.model}: trial {trial.number} {config} on {self.worker}")
            started = time.perf_counter()
            try:
                history = self.family.fit(self.train, self.val, hp, FitOptions(
                    epochs=epochs, seed=self.section.tune.seed, on_epoch_end=on_epoch_end,
                    metric=self.metric, class_weight=weights))
            except optuna.TrialPruned as err:
                pruned = err
            seconds = time.perf_counter() - started
            crashpoints.reached(f"tune@{self.model}.trial{trial.number}")
            value = record(trial, history, seconds, self.metric)
            best = families.best_epoch(history, self.metric)
            tracking.log_metrics({"best_val_accuracy": history["val_accuracy"][best], f"best_{score}": value,
                                  "best_val_loss": history["val_loss"][best], "best_epoch": best + 1,
                                  "seconds": seconds})
            if pruned:
                tracking.set_tag("optuna.state", "PRUNED")
                tracking.log_metrics({"pruned_at_epoch": len(history["val_accuracy"])})
                print(f"tune@{self.model}: trial {trial.number} {pruned}")
        if pruned:
            raise pruned
        return value


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
