"""A model's search, run from the tune stage to the end: with one worker its trials train in the stage's
own process; with several (`tune.workers`), local worker processes train them while the stage waits."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

import optuna

from imdbclf.params import check_model_name
from imdbclf.tuning.search import Search, count_trials_to_train
from imdbclf.tuning.storage import redact_storage_url, storage_errors
from imdbclf.tuning.trials import TrialResult
from imdbclf.tuning.workers import PARENT_RUN, TrialRunner, reconcile


def local_worker_count(setting: int | str, gpus: int) -> int:
    """`tune.workers`: a number, or auto — one per GPU, one on a CPU-only machine."""
    return max(1, gpus) if setting == "auto" else int(setting)


def start_local_workers(command: Sequence[str], model: str, count: int, gpus: int,
                        idle_exit_s: float) -> list[subprocess.Popen]:
    """`count` worker processes on this machine, each `command` (the caller's: the core starts no
    command of its own), given the model, `--idle-exit` and, on a CPU, `--threads`: each on its own GPU
    (CUDA_VISIBLE_DEVICES) or, on a CPU, with its share of the cores, so that they do not oversubscribe
    the machine."""
    threads = str(max(1, (os.cpu_count() or 1) // count))
    check_model_name(model)  # an argument of the command line below
    procs = []
    for i in range(count):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(i % gpus)} if gpus else None
        procs.append(subprocess.Popen([*command, model, "--idle-exit", str(idle_exit_s),
                                       *([] if gpus else ["--threads", threads])], env=env))
    return procs


def search(runner: TrialRunner, url: str, parent_run_id: str, worker_command: Sequence[str] = ()) -> list[TrialResult]:
    """Run the model's search (`tune.strategy`) to the end: with one worker the trials train in this
    process; with several (`tune.workers`), local processes of `worker_command` train them while this one
    waits. Each trial's MLflow run is filed under `parent_run_id`, the tune stage's run."""
    tune = runner.section.tune
    gpus = int(runner.family.runtime().get("gpus", 0))
    count = local_worker_count(tune.workers, gpus)
    if count > 1 and not worker_command:
        raise ValueError("several local workers need the command that starts one (worker_command)")
    local = (start_local_workers(worker_command, runner.model, count, gpus, runner.settings.worker_idle_exit_s)
             if count > 1 else [])
    print(f"tune@{runner.model}: {tune.strategy} search, {count} local worker(s), studies in {redact_storage_url(url)}")

    def on_phase(study: optuna.Study) -> None:  # workers file their trials' runs under the stage's run
        study.set_user_attr(PARENT_RUN, parent_run_id)

    def work(study: optuna.Study) -> bool:  # one worker: train here; several: they train while this waits
        return runner.run_one(study) if all(proc.poll() is not None for proc in local) else False

    try:
        with storage_errors(url):
            return Search(runner.storage, runner.model, runner.key, tune, runner.settings, work=work,
                          reconcile=lambda study: reconcile(runner, study), on_phase=on_phase).run()
    finally:
        for proc in local:
            proc.terminate()
        for proc in local:
            proc.wait()


def trials_to_train(runner: TrialRunner, url: str) -> int:
    """About how many trials the search still has to train (what the CPU-time guard multiplies out)."""
    tune = runner.section.tune
    with storage_errors(url):
        return count_trials_to_train(runner.storage, runner.model, runner.key, tune.strategy, tune.grid, tune.n_trials)
