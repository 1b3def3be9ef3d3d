"""Team set-up: the pipeline against the services of `make services` (PostgreSQL + mlflow server), and an
experiment carried from one clone to another through a bare git remote and a local-directory DVC remote."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import REPO, make_project, tiny_params
from tests.helpers import run as bench_run
from tests.tiny_imdb import write_archive

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


def test_pipeline_runs_unchanged_against_the_team_services(team_services, tmp_path):
    env = team_services.env()  # MLFLOW_TRACKING_URI and IMDBCLF_TUNING_STORAGE (PostgreSQL)
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
    assert [(r["label"], r["sentiment"]) for r in by_champion] == [(1, "positive"), (0, "negative")]
    by_dir = predict(root, env, "--model", "models/tfidf_logreg/seed_0")
    assert [r["probability"] for r in by_champion] == [r["probability"] for r in by_dir]


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
    assert [(r["label"], r["sentiment"]) for r in by_dir] == [(1, "positive"), (0, "negative")]


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
