"""Faults end to end: stages of a tiny project SIGKILLed at points during work and output writing, then
a plain `dvc repro` that recovers; an unknown params key and a lost MLflow store after that. A file of its
own: it builds its own project, so it runs beside the other end-to-end tests, not after them."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from mlflow.tracking import MlflowClient

from devkit.helpers import TINY_ARCHIVE_SHA256, make_project, tiny_params
from devkit.helpers import run_pipeline as run
from devkit.tiny_imdb import write_archive

pytestmark = pytest.mark.slow  # end to end: dvc repro of a tiny project, five times


def test_stages_killed_at_any_point_recover_on_the_next_repro(tmp_path):
    """SIGKILL (no handler runs) at points during work and during output writing, one `dvc repro` each,
    then a plain `dvc repro`: it completes, leaves no staging or temp files, no run RUNNING, and the
    deterministic TF-IDF predictions are byte for byte those of an uninterrupted run."""
    tmp = tmp_path
    archive = write_archive(tmp / "aclImdb_v1.tar.gz", per_class=30, extra={"aclImdb/train/unsup/1_0.txt": b"x"})
    params = tiny_params(str(archive))
    root = make_project(tmp / "repo", params)
    # (a save or an output file killed midway is unit-tested: tests/test_families.py, tests/test_faults.py)
    for point, killed in (("fetch.staged", "fetch"), ("tune@lstm.trial1", "tune@lstm"),
                          ("retrain@lstm.epoch2", "retrain@lstm"), ("write:report.md", "report")):
        result = run(["dvc", "repro"], root, check=False, env={"IMDBCLF_KILL_AT": point})
        assert result.returncode != 0, point
        assert f"failed to reproduce '{killed}" in result.stderr, (point, result.stderr[-2000:])
        if point == "fetch.staged":
            assert list((root / "data").glob(".raw-*"))  # it was killed mid-work, staging in place
        if point == "write:report.md":  # the retrain killed in epoch 2 resumed after epoch 1
            assert "retrain@lstm: seed 0 resumed after epoch 1 of 2" in result.stdout
    run(["dvc", "repro"], root)

    assert not list((root / "data").glob(".raw-*"))
    leftovers = [p for p in root.rglob(".*") if ".tmp" in p.name or "tmp-" in p.name]
    assert not [p for p in leftovers if ".dvc" not in p.parts and ".git" not in p.parts], leftovers
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("imdb-sentiment").experiment_id], max_results=1000)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed = [r for r in runs if r.info.status == "KILLED"]
    assert {r.data.tags["dvc.stage"] for r in killed} >= {"fetch", "tune@lstm", "retrain@lstm", "report"}
    assert all("ended without closing the run" in r.data.tags["killed_because"] for r in killed)
    for output in ("data/prepared/train.parquet", "metrics/eval/tfidf_logreg/predictions.parquet"):
        assert hashlib.sha256((root / output).read_bytes()).hexdigest() == TINY_ARCHIVE_SHA256[output], output
    trials = json.loads((root / "metrics/tune/tfidf_logreg.json").read_text())["trials"]
    assert sorted(t["config"]["C"] for t in trials if t["state"] == "COMPLETE") == [1.0, 4.0]  # each once
    assert json.loads((root / "metrics/report.json").read_text())["models"]

    # an unknown key that no stage reads still fails the next repro, in one line naming it
    (root / "params.yaml").write_text(yaml.safe_dump({**params, "foo": 1}, sort_keys=False))
    result = run(["dvc", "repro"], root, check=False)
    assert result.returncode != 0 and "error: params.yaml: unknown key 'foo'" in result.stderr
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    # a lost MLflow store: the report registers the models again from models/ instead of crashing
    (root / "mlflow.db").rename(root / "mlflow.db.lost")
    run(["dvc", "repro", "-f", "report"], root)
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("imdb-champion", "champion")
    assert champion.tags["source_model"] == f"imdb-{json.loads((root / 'metrics/report.json').read_text())['champion']}"
