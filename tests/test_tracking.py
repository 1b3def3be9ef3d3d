import json
import os
import subprocess
import sys
import time

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from devkit.helpers import raises_naming, tiny_params
from imdbclf import tracking
from imdbclf.data import Split
from imdbclf.ops import cli as imdbclf_main


@pytest.fixture
def store(tmp_path):
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("resume")  # not the experiment id another test left active
    yield
    mlflow.set_tracking_uri(previous)


def test_a_resumed_run_is_tagged_and_shows_every_epoch(store):
    history = {"val_accuracy": [0.6, 0.7, 0.8], "val_loss": [0.6, 0.5, 0.4]}
    with mlflow.start_run() as run:
        tracking.log_metrics({"val_accuracy": 0.8, "val_loss": 0.4}, step=3)  # what the resumed fit logged
        tracking.log_resumed(2, history)
    client = MlflowClient()
    assert client.get_run(run.info.run_id).data.tags["resumed_from_epoch"] == "2"
    steps = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert sorted((m.step, m.value) for m in steps) == [(1, 0.6), (2, 0.7), (3, 0.8)]


def test_every_run_has_its_run_type(store):
    with mlflow.start_run() as parent:
        with tracking.child_run("lstm-seed-0", "seed") as seed:
            pass
        with tracking.trial_run("lstm-trial-0", None, {"trial": "0"}) as trial:
            pass
        with raises_naming("run_type", "'seeds'", kind=ValueError):
            with tracking.child_run("typo", "seeds"):
                pass
    with tracking.trial_run("lstm-trial-1", parent.info.run_id, {"trial": "1"}) as remote:  # a worker elsewhere
        pass
    client = MlflowClient()
    assert client.get_run(seed.info.run_id).data.tags["run_type"] == "seed"
    assert client.get_run(trial.info.run_id).data.tags["run_type"] == "trial"
    remote = client.get_run(remote.info.run_id).data.tags
    assert remote["run_type"] == "trial" and remote["mlflow.parentRunId"] == parent.info.run_id


def test_splits_are_logged_as_dataset_inputs_with_a_digest_of_their_data(store):
    texts = np.array([f"review {i}" for i in range(40)], dtype=object)
    train = Split("train", texts, np.arange(40) % 2)
    val = Split("val", texts[:10], np.arange(10) % 2)
    datasets = tracking.split_datasets(train, val)
    again, sample = tracking.split_datasets(train, train.subsample(20, 0))
    assert again.digest == datasets[0].digest != sample.digest  # the same data, the same digest
    with mlflow.start_run() as run:
        tracking.log_datasets(datasets)
    inputs = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    logged = {(i.dataset.name, {t.key: t.value for t in i.tags}["mlflow.data.context"]) for i in inputs}
    assert logged == {("train", "training"), ("val", "validation")}
    train_input = next(i.dataset for i in inputs if i.dataset.name == "train")
    assert json.loads(train_input.source)["uri"] == "data/prepared/train.parquet"
    assert json.loads(train_input.profile)["num_rows"] == 40
    assert train_input.digest == datasets[0].digest


def test_ui_prints_the_link_to_the_runs_then_starts_mlflow_ui_on_the_store(store, tmp_path, monkeypatch, capsys):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(str(tmp_path / "imdb.tar.gz"))))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    started = []
    monkeypatch.setattr(os, "execv", lambda path, argv: started.append(argv))
    imdbclf_main.main(["ui", "--port", "5123"])
    experiment = MlflowClient().get_experiment_by_name("imdb-sentiment")  # created, so that the link has its id
    assert capsys.readouterr().out == (f"runs of imdb-sentiment: http://127.0.0.1:5123/#/experiments/"
                                       f"{experiment.experiment_id}?workflowType=machine_learning\n")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    argv = started[0]
    assert argv[1:4] == ["-m", "mlflow", "ui"]
    assert argv[argv.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert argv[argv.index("--default-artifact-root") + 1] == str(tmp_path / "mlartifacts")
    assert argv[argv.index("--port") + 1] == "5123"


def test_optuna_ui_prints_its_link_and_serves_the_studies_of_the_tuning_storage(tmp_path):
    """`make optuna-ui`: optuna-dashboard on the journal the tune stages write (here one study of two
    trials, one pruned), answering its own API at the printed link."""
    import urllib.request

    import optuna

    from devkit.helpers import REPO, free_port
    from imdbclf import params, tuning

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(str(tmp_path / "imdb.tar.gz"))))
    settings = params.parse(tiny_params(str(tmp_path / "imdb.tar.gz"))).tuning
    storage = tuning.open_storage(str(tmp_path / "optuna.journal"), settings)
    study = optuna.create_study(study_name="lstm-demo", storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={"learning_rate": 0.01}, value=0.8,
                    distributions={"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-1)}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, intermediate_values={1: 0.5}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "IMDBCLF_TUNING_STORAGE")}
    env["PYTHONPATH"] = str(REPO)
    server = subprocess.Popen([sys.executable, "-m", "imdbclf", "optuna-ui", "--port", str(port)], cwd=tmp_path,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        assert line == f"studies in {tmp_path / 'optuna.journal'}: http://127.0.0.1:{port}/dashboard\n"
        api = f"http://127.0.0.1:{port}/api/studies"
        for _ in range(600):  # the server's start, not a timing: it answers once it listens
            try:
                with urllib.request.urlopen(api, timeout=60) as response:
                    studies = json.loads(response.read())["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, "optuna-ui exited"
                time.sleep(0.2)
        assert [s["study_name"] for s in studies] == ["lstm-demo"]
        with urllib.request.urlopen(f"{api}/{studies[0]['study_id']}", timeout=60) as response:
            trials = json.loads(response.read())["trials"]
        assert [t["state"] for t in trials] == ["Complete", "Pruned"]
    finally:
        server.kill()
        server.wait()


def test_a_tracking_uri_of_a_scheme_mlflow_has_no_store_for_is_one_line(monkeypatch):
    from imdbclf import params
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "gopher://x")
    with raises_naming("MLFLOW_TRACKING_URI", "gopher"):
        tracking.tracking_uri(params.parse(tiny_params("data/x.csv")))


def test_a_tracking_server_that_answers_a_byte_at_a_time_is_given_up_within_its_deadline():
    """Each byte comes well within the read timeout, so only a deadline on the whole answer ends it."""
    import http.server
    import threading

    from imdbclf.tracking import store

    class Drip(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with raises_naming(url, "2 s"):  # the server, and the deadline it missed: twice the connect timeout
            store.check_server(url, timeout_s=1)
    finally:
        server.shutdown()
        server.server_close()
