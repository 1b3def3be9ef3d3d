"""Several worker processes on one study: every trial trained once; a worker killed mid-trial loses
nothing, its trial is trained again by a live worker, and no config completes twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter

import pytest
from optuna.trial import TrialState

from devkit.helpers import REPO
from imdbclf import tuning
from imdbclf.params import TuneParams, TuningParams

pytestmark = pytest.mark.slow  # worker processes training trials

SETTINGS = TuningParams(poll_s=0.05, max_retry=2)
GRID = {"x": [1, 2, 3, 4, 5, 6]}
# A worker process as `tune-worker` runs one, with a training that takes a moment and prints its trial.
WORKER = textwrap.dedent("""
    import sys, time
    from imdbclf import tuning
    from imdbclf.params import TuningParams

    settings = TuningParams(poll_s=0.05)
    storage = tuning.open_storage(sys.argv[1], settings)

    def train(trial, config):
        print(f"training {trial.number}", flush=True)
        time.sleep(0.4)
        return tuning.record(trial, {"val_accuracy": [config["x"] / 10], "val_loss": [0.5]}, 0.4)

    worker = tuning.Worker("k", tuning.worker_identity("cpu"), train)
    # idle for as long as the test may take to queue the trials (a busy machine): the test stops it
    worker.serve(storage, "m", lambda name: tuning.open_study(storage, name), lambda study: None, 0.05, 600.0)
""")


def start_worker(journal: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, journal], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def test_two_workers_train_every_trial_once_and_a_killed_worker_loses_nothing(tmp_path):
    journal = str(tmp_path / "studies.journal")
    storage = tuning.open_storage(journal, SETTINGS)
    doomed, survivor = start_worker(journal), start_worker(journal)

    def kill_in_first_trial():
        doomed.stdout.readline()  # "training N": it holds a trial now
        doomed.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_in_first_trial)
    killer.start()
    search = tuning.Search(storage, "m", "k", TuneParams(strategy="grid", grid=GRID), SETTINGS,
                           work=lambda study: False,  # the workers do the work
                           reconcile=lambda study: tuning.fail_dead_trials(study, SETTINGS))
    results = search.run()
    killer.join()
    survivor.terminate()  # not its idle exit: how long a worker waits for trials is no part of the test
    survivor.wait(timeout=60)
    doomed.wait(timeout=60)

    assert sorted(r.config["x"] for r in results) == GRID["x"]
    study = search.study({"strategy": "queue"})
    trials = study.get_trials()
    completed = Counter(t.user_attrs["config"] for t in trials if t.state == TrialState.COMPLETE)
    assert sorted(completed.values()) == [1] * len(GRID["x"])  # none lost, none twice
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["worker"]["pid"] == doomed.pid
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert [t.state for t in retried] == [TrialState.COMPLETE]
    assert retried[0].user_attrs["worker"]["pid"] == survivor.pid
