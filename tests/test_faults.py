"""Faults: signals, dead processes, damaged or unreachable stores, file modes. Each ends in one clear
line and a non-zero exit, or in a clean recovery, never in a run left RUNNING or half a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import mlflow
import pytest
import requests
from mlflow.tracking import MlflowClient

from devkit.helpers import REPO, raises_naming, wait_until
from imdbclf import atomic, params, tracking

# A stage-like program: a stage run with a trial child run that sleeps until it is signalled.
SLEEPER = textwrap.dedent("""
    import time
    from imdbclf import params, tracking, tuning
    from imdbclf.params import TuneParams
    from imdbclf.errors import exit_on_user_error

    @exit_on_user_error
    def main():
        p = params.parse(PARAMS)
        with tracking.stage_run(p, "tune@sleepy"):
            def train(trial, config):
                with tracking.child_run(f"trial-{trial.number}", "trial"):
                    print("training", flush=True)
                    time.sleep(60)
            storage = tuning.open_storage("studies.journal", p.tuning)
            worker = tuning.Worker("k", tuning.worker_identity("cpu"), train)
            tuning.Search(storage, "m", "k", TuneParams(strategy="grid", grid={"x": [1]}), p.tuning,
                          work=worker.run_one, reconcile=lambda study: None).run()

    main()
""")


@pytest.fixture
def store(tmp_path, monkeypatch, params_dict):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri
    mlflow.set_tracking_uri(None)


def runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("imdb-sentiment")
    return client.search_runs([experiment.experiment_id])


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_mark_runs_killed_and_print_one_line(tmp_path, store, params_dict, sig, code):
    import optuna

    script = tmp_path / "sleeper.py"
    script.write_text(f"PARAMS = {params_dict!r}\n" + SLEEPER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_USE_LEGACY_KERAS": "1"}
    # as from a terminal: a test run started in the background (`make test &`) inherits SIGINT ignored
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline().strip() == "training"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    stage = next(r for r in runs(store) if r.data.tags["dvc.stage"] == "tune@sleepy"
                 and "mlflow.parentRunId" not in r.data.tags)
    assert stderr.strip().splitlines()[-1] == f"interrupted: tune@sleepy, run {stage.info.run_id} marked KILLED"
    assert "Traceback" not in stderr
    assert {r.info.status for r in runs(store)} == {"KILLED"}  # the stage run and its trial
    journal = optuna.storages.journal.JournalFileBackend(str(tmp_path / "studies.journal"))
    storage = optuna.storages.JournalStorage(journal)
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    assert [t.state.name for t in study.trials] == ["FAIL"]


def test_runs_of_a_killed_process_are_closed_when_the_next_stage_starts(tmp_path, store, params_dict):
    p = params.parse(params_dict)
    dead = subprocess.Popen(["true"])
    dead.wait()
    tracking.setup(p)
    client = MlflowClient()
    orphan = client.create_run(mlflow.get_experiment_by_name("imdb-sentiment").experiment_id,
                               tags={**tracking.process_tags(), "pid": str(dead.pid), "dvc.stage": "tune@lstm"})
    alive = client.create_run(orphan.info.experiment_id, tags=tracking.process_tags())  # this process: alive
    with tracking.stage_run(p, "tune@lstm"):
        pass
    closed = client.get_run(orphan.info.run_id)
    assert closed.info.status == "KILLED" and "ended without closing the run" in closed.data.tags["killed_because"]
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"
    client.set_terminated(alive.info.run_id)


def test_runs_of_other_hosts_are_closed_when_their_heartbeat_stops(tmp_path, store, params_dict):
    params_dict["tracking"].update(run_heartbeat_s=0.2, run_stale_after_s=30)
    p = params.parse(params_dict)
    tracking.setup(p)
    client = MlflowClient()
    experiment_id = mlflow.get_experiment_by_name("imdb-sentiment").experiment_id
    elsewhere = {"host": "another-machine", "pid": "4242", "pid_started": "0"}
    silent = client.create_run(experiment_id, tags={**elsewhere, "heartbeat": f"{time.time() - 60:.0f}"})
    beating = client.create_run(experiment_id, tags={**elsewhere, "heartbeat": f"{time.time():.0f}"})
    unknown = client.create_run(experiment_id, tags=elsewhere)  # older code, no heartbeat: not judged
    with tracking.stage_run(p, "tune@lstm") as run:
        first = client.get_run(run.info.run_id).data.tags["heartbeat"]
        # this run's own heartbeat moves on while it is open (a tag in whole seconds: a second at least)
        assert wait_until(lambda: client.get_run(run.info.run_id).data.tags["heartbeat"] > first)
    closed = client.get_run(silent.info.run_id)
    assert closed.info.status == "KILLED"
    assert "no heartbeat from process 4242 on another-machine" in closed.data.tags["killed_because"]
    for alive in (beating, unknown):
        assert client.get_run(alive.info.run_id).info.status == "RUNNING"
        client.set_terminated(alive.info.run_id)


@pytest.mark.parametrize("damage, names", [  # the fault, and the size left where it tells the user anything
    (lambda f: f.write_bytes(b""), ("empty", "0 bytes")),
    (lambda f: f.write_bytes(f.read_bytes()[: f.stat().st_size // 3]), ("truncated", "{size} of")),
    (lambda f: f.write_bytes(b"garbage" * 100), ("not an SQLite database",)),
])
def test_a_damaged_store_fails_in_one_line_naming_it(tmp_path, store, params_dict, damage, names):
    p = params.parse(params_dict)
    with tracking.stage_run(p, "fetch"):
        pass
    path = tmp_path / "mlflow.db"
    with __import__("sqlite3").connect(path) as db:  # fold the WAL into the file, as a closed store is
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    damage(path)
    size = path.stat().st_size
    with raises_naming(str(path), *(name.format(size=size) for name in names)):
        tracking.setup(p)
    if size == 0:
        assert path.stat().st_size == 0  # not silently recreated as a new, empty store


def test_an_unreachable_server_fails_fast_in_one_line(monkeypatch, params_dict):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    params_dict["tracking"]["connect_timeout_s"] = 2
    asked = []
    real_get = requests.get
    monkeypatch.setattr(requests, "get", lambda *a, **kw: asked.append(kw.get("timeout")) or real_get(*a, **kw))
    with raises_naming("http://127.0.0.1:9", "not reachable", "MLFLOW_TRACKING_URI"):
        tracking.setup(params.parse(params_dict))
    assert asked == [2]  # one look, with tracking.connect_timeout_s: not minutes of MLflow's own retries


def test_outputs_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_json(tmp_path / "m.json", {"a": 1})
        atomic.write_text(tmp_path / "r.md", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "r.md").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "r.md"]  # no temp files left


def test_predict_file_that_is_not_utf8_is_named_with_its_byte_offset(tmp_path):
    bad = tmp_path / "reviews.txt"
    bad.write_bytes(b"good movie\n\xff\xfe bad bytes\n")
    result = subprocess.run([sys.executable, "-m", "imdbclf", "predict", "--file", str(bad), "--model", "x"],
                            cwd=REPO, capture_output=True, text=True, env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {bad}: not UTF-8 text (invalid start byte at byte 11)"




def test_a_temp_file_left_by_a_killed_writer_goes_with_the_next_write(tmp_path):
    (tmp_path / ".m.json.4242.tmp").write_text('{"half": ')
    atomic.write_json(tmp_path / "m.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
