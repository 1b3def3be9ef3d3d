"""Team set-up: the pipeline against the services of `make services` (PostgreSQL + mlflow server), and an
experiment carried from one clone to another through a bare git remote and a local-directory DVC remote."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
import requests
from mlflow.tracking import MlflowClient

from devkit.helpers import REPO, make_project, raises_naming, tiny_params
from devkit.helpers import run as bench_run
from devkit.tiny_imdb import write_archive
from imdbclf.ops import services
from imdbclf.tracking import store

pytestmark = pytest.mark.slow  # PostgreSQL and an mlflow server

TEXTS = ["great wonderful brilliant film", "awful boring dull plot"]


def tfidf_only(tmp: Path) -> dict:
    """The tiny pipeline with the TF-IDF baseline alone: every stage runs, in seconds."""
    params = tiny_params(str(write_archive(tmp / "aclImdb_v1.tar.gz", per_class=30)))
    params["models"] = ["tfidf_logreg"]
    del params["lstm"]
    return params


def predict(root: Path, env: dict, *args: str) -> list[dict]:
    return json.loads(bench_run(["python", "-m", "imdbclf", "predict", "--json", *args, *TEXTS], root, env).stdout)


def test_pipeline_runs_unchanged_against_the_team_services(team_services, tmp_path, monkeypatch):
    """As a team member: their login to the mlflow server over HTTPS, the studies in PostgreSQL over TLS,
    both servers' certificates verified against the services' CA."""
    env = team_services.env()  # MLFLOW_TRACKING_URI (https), the member's login, the CA, IMDBCLF_TUNING_STORAGE
    assert env["MLFLOW_TRACKING_URI"].startswith("https://") and env["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert "sslmode=verify-full" in env["IMDBCLF_TUNING_STORAGE"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # this test's own MlflowClient logs in the same way
    params = tfidf_only(tmp_path)
    params["tfidf_logreg"]["tune"]["workers"] = 2  # two worker processes share the study in PostgreSQL
    root = make_project(tmp_path / "repo", params)
    bench_run(["dvc", "repro"], root, env)

    client = MlflowClient(tracking_uri=team_services.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("imdb-sentiment").experiment_id], max_results=500)
    assert runs and all(r.info.status == "FINISHED" for r in runs)
    stages = {r.data.tags.get("dvc.stage") for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert {"fetch", "split", "tune@tfidf_logreg", "retrain@tfidf_logreg", "evaluate@tfidf_logreg", "report"} <= stages
    tune = next(r for r in runs if r.data.tags.get("dvc.stage") == "tune@tfidf_logreg"
                and "mlflow.parentRunId" not in r.data.tags)
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tune.info.run_id]
    assert len(trials) == 2 and all("best_val_accuracy" in t.data.metrics for t in trials)
    assert all(t.data.tags["worker"].split(":")[0] for t in trials)  # each trial names its worker
    study = optuna.load_study(study_name=optuna.get_all_study_names(env["IMDBCLF_TUNING_STORAGE"])[0],
                              storage=env["IMDBCLF_TUNING_STORAGE"])
    done = Counter(t.user_attrs["config"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    assert sorted(done.values()) == [1, 1]  # every trial once, by the workers (not the waiting stage)
    assert {t.user_attrs["worker"]["pid"] for t in study.trials} != {tune.data.tags["pid"]}
    # the model went to the served artifact store and the registry; the champion alias points at it
    version = client.search_model_versions("name='imdb-tfidf_logreg'")[0]
    assert client.list_artifacts(version.run_id)
    champion = client.get_model_version_by_alias("imdb-champion", "champion")
    assert champion.tags["source_model"] == "imdb-tfidf_logreg"

    by_champion = predict(root, env)  # models:/imdb-champion@champion, downloaded through the server
    assert [(r["label"], r["sentiment"]) for r in by_champion] == [("positive", "positive"), ("negative", "negative")]
    by_dir = predict(root, env, "--model", "models/tfidf_logreg/seed_0")
    assert [r["probability"] for r in by_champion] == [r["probability"] for r in by_dir]
    assert champion.tags["imdbclf.promoted_by"] == "alice"  # who moved the alias
    a_member_cannot_plant_a_model_by_rewriting_its_digest_tag(root, env, client, champion, tmp_path)


def a_member_cannot_plant_a_model_by_rewriting_its_digest_tag(root, env, client, champion, tmp_path):
    """The red team's first hole: as a member, PUT a pickle over the champion's python_model.pkl, then set
    the digest tag to the payload's md5. The run's param (immutable) still holds the real tag's digest."""
    import pickle

    from imdbclf import integrity, model_registry
    from tests.test_families import Planted

    marker = tmp_path / "PWNED"
    payload = pickle.dumps(Planted(marker))
    location = client.get_logged_model(model_registry.logged_model_id(champion)).artifact_location
    put = requests.put(f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow-artifacts/artifacts/"
                       f"{location.removeprefix('mlflow-artifacts:/')}/python_model.pkl", data=payload,
                       auth=(env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]),
                       verify=env["MLFLOW_TRACKING_SERVER_CERT_PATH"], timeout=60)
    assert put.ok, put.text  # a member may write artifacts...
    manifest = json.loads(champion.tags[integrity.TAG])
    manifest["python_model.pkl"] = __import__("hashlib").md5(payload).hexdigest()
    client.set_model_version_tag(champion.name, champion.version, integrity.TAG, json.dumps(manifest, sort_keys=True))
    refused = bench_run(["python", "-m", "imdbclf", "predict", *TEXTS], root, env, check=False)
    assert refused.returncode != 0 and "the tag was rewritten" in refused.stderr  # ...but not make it load
    assert len(refused.stderr.strip().splitlines()) == 1 and not marker.exists()


def test_an_experiment_travels_between_clones_through_git_and_dvc_remotes(tmp_path):
    env = {"MLFLOW_TRACKING_URI": ""}  # each clone's embedded store: this is about git and DVC
    origin = tmp_path / "origin.git"
    bench_run(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    first = make_project(tmp_path / "first", tfidf_only(tmp_path))
    # the repository's DVC config: its default remote is the folder beside the clone, ../imdbclf-dvc-remote
    shutil.copy(REPO / ".dvc" / "config", first / ".dvc" / "config")
    for cmd in (["git", "commit", "-qam", "default DVC remote"], ["git", "remote", "add", "origin", str(origin)],
                ["git", "push", "-q", "origin", "HEAD"], ["dvc", "exp", "run", "-n", "travels"],
                ["dvc", "push"], ["dvc", "exp", "push", "origin", "travels"]):
        bench_run(cmd, first, env)
    assert list((tmp_path / "imdbclf-dvc-remote").rglob("*"))

    bench_run(["git", "clone", "-q", str(origin), "second"], tmp_path)
    second = tmp_path / "second"
    bench_run(["dvc", "exp", "pull", "origin", "travels"], second, env)
    shown = json.loads(bench_run(["dvc", "exp", "show", "--json"], second, env).stdout)
    assert "travels" in {e["name"] for baseline in shown for e in (baseline.get("experiments") or [])}
    bench_run(["dvc", "exp", "apply", "travels"], second, env)
    bench_run(["dvc", "pull"], second, env)

    for path in ("dvc.lock", "metrics/eval/tfidf_logreg.json", "metrics/report.json", "data/prepared/train.parquet",
                 "models/tfidf_logreg/seed_0/family.json"):
        assert (second / path).read_bytes() == (first / path).read_bytes(), path
    # nothing to recompute: the studies are not a stage output but the shared tuning storage
    assert json.loads(bench_run(["dvc", "status", "--json"], second, env).stdout) == {}
    by_dir = predict(second, env, "--model", "models/tfidf_logreg/seed_0")
    assert [(r["label"], r["sentiment"]) for r in by_dir] == [("positive", "positive"), ("negative", "negative")]


def test_the_workers_login_runs_no_program_and_cannot_reach_mlflows_database(team_services):
    """The tuning URL every worker gets is the `optuna` role's: the red team's `COPY ... TO PROGRAM` (a
    shell command on the services host, as a superuser login could) is refused, and so is MLflow's
    database; the mlflow server's own role is no superuser either."""
    import psycopg

    with psycopg.connect(team_services.database_uri("optuna"), autocommit=True) as db:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("COPY (SELECT 1) TO PROGRAM 'id > /tmp/imdbclf-pwned'")
        powers = db.execute("SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname IN "
                            "('optuna', 'mlflow') ORDER BY rolname").fetchall()
    assert powers == [("mlflow", False, False, False), ("optuna", False, False, False)]
    assert not Path("/tmp/imdbclf-pwned").exists()
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(team_services.database_uri("mlflow"), connect_timeout=10)


def test_the_mlflow_server_refuses_anonymous_clients_and_read_only_users_write_nothing(
        team_services_config, team_services, monkeypatch):
    """The red team's anonymous writes (artifact over a registered model, runs deleted, the champion alias
    moved) now get 401; a login made --read-only reads runs and models but changes none of them."""
    api, ca = f"{team_services.tracking_uri}/api/2.0", str(team_services.ca)
    for key, value in team_services.env().items():
        monkeypatch.setenv(key, value)
    member = MlflowClient(tracking_uri=team_services.tracking_uri)
    experiment = member.create_experiment("guarded")
    run = member.create_run(experiment)
    member.log_text(run.info.run_id, "trusted", "model/pipeline.skops")
    member.create_registered_model("guarded-model")
    version = member.create_model_version("guarded-model", f"runs:/{run.info.run_id}/model", run.info.run_id)

    anonymous = [
        ("GET", f"{api}/mlflow/experiments/search?max_results=5", None),
        ("GET", f"{api}/mlflow/runs/get?run_id={run.info.run_id}", None),
        ("POST", f"{api}/mlflow/runs/delete", {"run_id": run.info.run_id}),
        ("POST", f"{api}/mlflow/experiments/create", {"name": "planted"}),
        ("GET", f"{api}/mlflow/registered-models/search", None),
        ("POST", f"{api}/mlflow/registered-models/alias", {"name": "guarded-model", "alias": "champion",
                                                           "version": version.version}),
        ("DELETE", f"{api}/mlflow/registered-models/delete", {"name": "guarded-model"}),
        ("GET", f"{api}/mlflow-artifacts/artifacts/{experiment}/{run.info.run_id}/artifacts/model/pipeline.skops",
         None),
        ("PUT", f"{api}/mlflow-artifacts/artifacts/{experiment}/{run.info.run_id}/artifacts/model/pipeline.skops",
         None),
    ]
    for method, url, body in anonymous:
        answer = requests.request(method, url, json=body, data=b"planted" if method == "PUT" else None,
                                  verify=ca, timeout=60)
        assert answer.status_code == 401, (method, url, answer.status_code)

    reader = services.add_member(team_services_config, "reader", read_only=True)
    assert "IMDBCLF_TUNING_STORAGE" not in reader.env()  # no tuning login: its role owns the studies
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", reader.member[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", reader.member[1])
    as_reader = MlflowClient(tracking_uri=team_services.tracking_uri)
    assert as_reader.get_run(run.info.run_id).info.run_id == run.info.run_id  # READ: runs and models
    assert as_reader.get_model_version("guarded-model", version.version).run_id == run.info.run_id
    writes = [lambda: as_reader.create_run(experiment), lambda: as_reader.delete_run(run.info.run_id),
              lambda: as_reader.log_text(run.info.run_id, "planted", "model/pipeline.skops"),
              lambda: as_reader.set_registered_model_alias("guarded-model", "champion", version.version),
              lambda: as_reader.create_model_version("guarded-model", f"runs:/{run.info.run_id}/model"),
              lambda: as_reader.delete_registered_model("guarded-model"),
              lambda: as_reader.create_experiment("readers-own"),  # the red team's second hole: a reader's
              lambda: as_reader.create_registered_model("imdb-champion-squat")]  # own experiment, a name
    planted = requests.put(f"{api}/mlflow-artifacts/artifacts/{experiment}/planted/artifacts/big.bin",
                           data=bytes(5 << 20), auth=reader.member, verify=ca, timeout=60)
    assert planted.status_code == 403
    for write in writes:
        with pytest.raises(Exception, match="403|PERMISSION_DENIED|Permission denied"):
            write()
    assert member.get_run(run.info.run_id).info.lifecycle_stage == "active"
    assert not member.get_registered_model("guarded-model").aliases


def test_a_client_that_does_not_trust_the_ca_or_has_no_login_is_refused_in_one_line(team_services, monkeypatch):
    for key in ("MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    server = team_services.tracking_uri  # each names the server, the fault, and the setting that fixes it
    with raises_naming(server, "TLS certificate", "MLFLOW_TRACKING_SERVER_CERT_PATH"):
        store.check_server(team_services.tracking_uri, timeout_s=30)
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(team_services.ca))
    with raises_naming(server, "refused the login", "none given"):
        store.check_server(team_services.tracking_uri, timeout_s=30)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", team_services.member[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    with raises_naming(server, "refused the login", f"MLFLOW_TRACKING_USERNAME={team_services.member[0]}"):
        store.check_server(team_services.tracking_uri, timeout_s=30)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", team_services.member[1])
    store.check_server(team_services.tracking_uri, timeout_s=30)  # the member, trusting the CA

    import psycopg

    uri = team_services.database_uri("optuna")
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):  # another CA's bundle
        psycopg.connect(uri.replace(str(team_services.ca), "/etc/ssl/certs/ca-certificates.crt"), connect_timeout=10)
    with pytest.raises(psycopg.OperationalError, match="rejects connection"):  # no TLS: refused
        psycopg.connect(uri.replace("sslmode=verify-full", "sslmode=disable"), connect_timeout=10)
    with psycopg.connect(uri, connect_timeout=10) as db:
        assert db.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)


def test_services_add_user_prints_a_members_exports_and_admin_is_never_mlflows_default(
        team_services_config, team_services):
    shown = bench_run(["python", "-m", "imdbclf", "services", "--dir", str(team_services_config.root), "add-user",
                       "bob"], REPO)
    exports = dict(line.removeprefix("export ").split("=", 1) for line in shown.stdout.splitlines())
    assert exports["MLFLOW_TRACKING_USERNAME"] == "bob" and exports["MLFLOW_TRACKING_URI"] == team_services.tracking_uri
    secret = team_services_config.member_file("bob")
    assert exports["MLFLOW_TRACKING_PASSWORD"] == secret.read_text().strip() and secret.stat().st_mode & 0o077 == 0
    admin = team_services_config.secret_file("mlflow-admin")
    assert admin.stat().st_mode & 0o077 == 0 and admin.read_text().strip() != "password1234"
    answer = requests.get(f"{team_services.tracking_uri}/api/2.0/mlflow/users/get", params={"username": "bob"},
                          auth=("bob", exports["MLFLOW_TRACKING_PASSWORD"]), verify=str(team_services.ca), timeout=60)
    assert answer.ok and answer.json()["user"]["is_admin"] is False
    again = bench_run(["python", "-m", "imdbclf", "services", "--dir", str(team_services_config.root), "add-user",
                       "no body"], REPO, check=False)
    assert again.returncode != 0 and again.stderr.strip().splitlines() == [
        "error: member name 'no body': use letters, digits, '.', '_' or '-' (at most 64, not 'admin')"]


def test_a_process_that_loaded_tensorflow_reaches_the_studies_over_tls(team_services):
    """A Keras tune stage imports TensorFlow, then opens the team's studies over TLS: psycopg's TLS library,
    loaded after TensorFlow's, aborted the process; `use_legacy_keras`, called before TensorFlow loads,
    loads it first."""
    script = ("import sys; from imdbclf import environment; environment.use_legacy_keras(); import tensorflow; "
              "import psycopg; db = psycopg.connect(sys.argv[1], connect_timeout=10); "
              "print(db.execute('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()').fetchone()[0])")
    result = subprocess.run([sys.executable, "-c", script, team_services.database_uri("optuna")], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "True"
