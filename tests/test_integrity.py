"""A saved model is checked against the md5s DVC recorded before it is loaded: a model replaced in the
workspace, or pulled from a tampered DVC remote, stops in one line naming the file and both digests,
and nothing of it is loaded (the planted payload's marker file never appears)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import joblib
import pytest

from devkit.helpers import REPO, raises_naming, run, splits
from imdbclf import families, integrity, params
from tests.test_families import Planted


@pytest.fixture
def workspace(tmp_path, params_dict):
    """A DVC repository whose dvc.lock records models/tfidf_logreg (a fitted TF-IDF model), with a local
    remote holding it."""
    root = tmp_path / "repo"
    root.mkdir()
    section = params.parse(params_dict).model("tfidf_logreg")
    family = families.create("tfidf_logreg", section)
    train, val = splits()
    hp = families.hyperparameters("tfidf_logreg", section, {"C": 1.0, "ngram_max": 1, "min_df": 1})
    family.fit(train, val, hp, families.FitOptions(epochs=1))
    family.save(root / "models" / "tfidf_logreg" / "seed_0")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"],
                ["dvc", "remote", "add", "-d", "store", str(tmp_path / "remote")],
                ["dvc", "stage", "add", "-q", "-n", "retrain", "-o", "models/tfidf_logreg", "true"],
                ["dvc", "commit", "-q", "-f", "retrain"], ["dvc", "push", "-q"]):
        run(cmd, cwd=root)
    return root, root / "models" / "tfidf_logreg" / "seed_0", val


def test_a_model_as_dvc_recorded_it_loads(workspace):
    root, model, val = workspace
    expected = integrity.dvc_digests(model, root)
    assert set(expected) == {"family.json", "vocabulary.json", "weights.npz"}
    assert families.load_verified(model, root).predict_proba(val.texts).shape == (len(val), 2)


def test_a_model_file_replaced_in_the_workspace_is_refused_naming_both_digests(workspace):
    root, model, _ = workspace
    recorded = integrity.md5_of(model / "family.json")
    meta = json.loads((model / "family.json").read_text())
    (model / "family.json").write_text(json.dumps({**meta, "config": {**meta["config"], "max_iter": 5}}))
    with raises_naming(str(model / "family.json"), integrity.md5_of(model / "family.json"), "dvc.lock", recorded,
                       "not loaded"):
        families.load_verified(model, root)


def test_a_planted_pickle_beside_the_model_is_refused_before_anything_loads(workspace, tmp_path):
    root, model, _ = workspace
    marker = tmp_path / "marker"
    joblib.dump(Planted(marker), model / "pipeline.joblib")
    with raises_naming(str(model / "pipeline.joblib"), integrity.md5_of(model / "pipeline.joblib"), "no such file"):
        families.load_verified(model, root)
    assert not marker.exists()


def test_a_model_pulled_from_a_tampered_remote_is_refused(workspace, tmp_path):
    """The remote's object of weights.npz is replaced: `dvc pull` brings it (remote verify is off
    here, as it was when the attack was found), and the load refuses it."""
    root, model, _ = workspace
    recorded = integrity.md5_of(model / "weights.npz")
    remote_object = next(p for p in (tmp_path / "remote").rglob("*") if p.is_file() and p.name == recorded[2:])
    remote_object.chmod(0o644)
    remote_object.write_bytes(b"planted")
    shutil.rmtree(root / "models")
    shutil.rmtree(root / ".dvc" / "cache")
    run(["dvc", "pull", "-q"], cwd=root)
    with raises_naming(str(model / "weights.npz"), integrity.md5_of(model / "weights.npz"), recorded):
        families.load_verified(model, root)


def test_a_tampered_listing_in_dvcs_cache_is_refused(workspace):
    """Whoever changes a file and its entry in the directory's listing still differs from dvc.lock."""
    root, model, _ = workspace
    lock_md5 = integrity._lock_entry(model, root)[1]
    listing = integrity._cache_object(root, lock_md5)
    entries = json.loads(listing.read_text())
    (model / "family.json").write_text("{}")
    for entry in entries:
        if entry["relpath"].endswith("family.json"):
            entry["md5"] = integrity.md5_of(model / "family.json")
    listing.chmod(0o644)
    listing.write_text(json.dumps(entries))
    with raises_naming(str(listing), integrity.md5_of(listing), "dvc.lock", lock_md5, "models/tfidf_logreg"):
        families.load_verified(model, root)


def test_an_untracked_model_loads_only_if_its_format_cannot_run_code(workspace, tmp_path):
    root, model, val = workspace
    elsewhere = tmp_path / "copy"
    shutil.copytree(model, elsewhere)
    assert families.load_verified(elsewhere, root).predict_proba(val.texts[:2]).shape == (2, 2)  # skops: data only
    keras_like = tmp_path / "keras_like"
    keras_like.mkdir()
    (keras_like / "family.json").write_text(json.dumps({"family": "lstm", "config": {}}))
    with raises_naming(str(keras_like), "dvc.lock", "lstm", "dvc repro", "--trust"):  # and both ways out
        families.load_verified(keras_like, root)


def test_predict_refuses_a_tampered_model_in_one_line(workspace):
    root, model, _ = workspace
    (model / "weights.npz").write_bytes((model / "weights.npz").read_bytes() + b"\0")
    done = subprocess.run([sys.executable, "-m", "imdbclf", "predict", "--model", "models/tfidf_logreg/seed_0",
                           "great"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: models/tfidf_logreg/seed_0/weights.npz: md5 ")
    assert done.stderr.count("\n") == 1
