"""Workers: the same Bi-LSTM grid tuned with 1 and with 2 local worker processes against the team
services (PostgreSQL for the studies, an mlflow server), through the real tune stage on a subsample
of the real archive; then with 2 workers, one of them killed (SIGKILL) in the middle of a trial.
Writes metrics/bench/workers.json: wall-clock ratio, trials per hour, trials lost and trained twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import yaml

from bench.common import REPO, archive, free_port, make_project, run, with_overrides, write_result
from imdbclf.ops import services

SETTINGS = {  # the bench's overrides of params.yaml, recorded with the result
    "split.max_train": 2000, "split.max_val": 500, "split.max_test": 100,
    "lstm.model": {"vocab_size": 10000, "seq_len": 200, "truncate": "pre", "embed_dim": 32, "lstm_units": 16},
    "lstm.tune.strategy": "grid", "lstm.tune.epochs": 2,
    "lstm.tune.grid": {"optimizer": ["adam", "rmsprop"], "batch_size": [32, 64], "learning_rate": [0.003, 0.001]},
    "tuning.poll_s": 1,
}


def tune(project: Path, params: dict, endpoints: services.Endpoints, workers: int, kill_one: bool = False) -> dict:
    """One `dvc repro tune@lstm` with a fresh Optuna database; with kill_one, SIGKILL a worker mid-trial."""
    database = f"optuna_{workers}{'_kill' if kill_one else ''}"
    services.create_databases(endpoints, (database,))
    env = {**endpoints.env(), "IMDBCLF_TUNING_STORAGE": endpoints.database_uri(database)}
    storage = env["IMDBCLF_TUNING_STORAGE"]
    (project / "params.yaml").write_text(yaml.safe_dump(with_overrides(params, {"lstm.tune.workers": workers}),
                                                        sort_keys=False))
    killed = {}
    if kill_one:
        threading.Thread(target=kill_a_worker, args=(storage, killed), daemon=True).start()
    started = time.perf_counter()
    run(["dvc", "repro", "-f", "tune@lstm"], project, env=env, stream=True)
    seconds = time.perf_counter() - started
    trials = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage).trials
    done = Counter(t.user_attrs["config"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    configs = len(json.loads((project / "metrics/tune/lstm.json").read_text())["trials"])
    return {"workers": workers, "seconds": round(seconds, 1), "trials": configs,
            "trials_per_hour": round(configs / seconds * 3600, 1),
            "trials_lost": configs - len(done), "trials_completed_twice": sum(n > 1 for n in done.values()),
            "failed_and_retried": sum(t.state == optuna.trial.TrialState.FAIL for t in trials), **killed}


def kill_a_worker(storage: str, killed: dict) -> None:
    """Wait until a worker has been training a trial for a few seconds, then kill it with SIGKILL."""
    while True:
        time.sleep(1)
        try:
            names = optuna.get_all_study_names(storage)
            running = [t for t in optuna.load_study(study_name=names[0], storage=storage).trials
                       if t.state == optuna.trial.TrialState.RUNNING and "worker" in t.user_attrs] if names else []
        except Exception:  # noqa: BLE001 - the study is being created
            continue
        if running and (time.time() - running[0].datetime_start.timestamp()) > 3:
            killed.update(killed_worker_pid=running[0].user_attrs["worker"]["pid"], killed_in_trial=running[0].number)
            os.kill(running[0].user_attrs["worker"]["pid"], signal.SIGKILL)
            return


def main() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = str(archive())
    params["models"] = ["lstm"]
    params = with_overrides(params, SETTINGS)
    root = Path(tempfile.mkdtemp(prefix="imdbclf-services-"))  # not 0700: PostgreSQL's user must enter it
    config = services.Config(root=root, pg_port=free_port(), mlflow_port=free_port(), workers=1)
    try:
        endpoints = services.up(config)
        with tempfile.TemporaryDirectory() as tmp:
            project = make_project(Path(tmp) / "project", params)
            run(["dvc", "repro", "split"], project, env=endpoints.env(), stream=True)
            one, two = tune(project, params, endpoints, 1), tune(project, params, endpoints, 2)
            killed = tune(project, params, endpoints, 2, kill_one=True)
    finally:
        services.down(config)
        shutil.rmtree(root, ignore_errors=True)
    ratio = one["seconds"] / two["seconds"]
    write_result("workers", {
        "one_worker": one, "two_workers": two, "two_workers_one_killed": killed,
        "speedup_two_over_one": round(ratio, 2), "cpu_cores": os.cpu_count(),
        "targets": {"trials_lost": 0, "trials_completed_twice": 0},
        "met": killed["trials_lost"] == 0 and killed["trials_completed_twice"] == 0, "settings": SETTINGS,
    })
    print(f"1 worker {one['seconds']} s, 2 workers {two['seconds']} s (×{ratio:.2f}); killed worker: "
          f"lost {killed['trials_lost']}, twice {killed['trials_completed_twice']}")


if __name__ == "__main__":
    main()
