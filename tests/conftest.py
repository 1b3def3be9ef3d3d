from __future__ import annotations

import copy
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
REPO = Path(__file__).resolve().parents[1]


def tiny_params(source: str, hub_handles: tuple[str, str] | None = None) -> dict:
    """The repo's params.yaml, shrunk to seconds: tiny models, two trials, two epochs; with
    hub_handles (preprocessor, encoder directories), bert_small runs on those tiny SavedModels."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params = copy.deepcopy(params)
    params["data"]["source"] = source
    params["models"] = ["tfidf_logreg", "lstm"]
    params["tfidf_logreg"]["tune"]["grid"] = {"C": [1.0, 4.0], "ngram_max": [1], "min_df": [1]}
    lstm = params["lstm"]
    lstm["model"].update(vocab_size=200, seq_len=32, embed_dim=8, lstm_units=4)
    lstm["tune"].update(epochs=2, grid={"optimizer": ["adam", "rmsprop"], "batch_size": [16], "learning_rate": [0.01]})
    lstm["retrain"].update(epochs=2, patience=1)
    del params["electra_base"]
    bert = params["bert_small"]
    if hub_handles:
        params["models"].append("bert_small")
        bert["model"].update(preprocessor=hub_handles[0], encoder=hub_handles[1], seq_len=16)
        grid = {"optimizer": ["adamw", "adam"], "batch_size": [8], "learning_rate": [0.003]}
        bert["tune"].update(epochs=2, grid=grid)
        bert["retrain"].update(epochs=2, patience=1)
    else:
        del params["bert_small"]
    return params


@pytest.fixture
def params_dict(tmp_path) -> dict:
    return tiny_params(str(tmp_path / "imdb.tar.gz"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def team_services():
    """A PostgreSQL cluster and an mlflow server on free loopback ports, started (and stopped) by the code
    behind `make services`; its `Endpoints` give the tracking URI and database URLs. Skipped where
    PostgreSQL is not installed."""
    from imdbclf import services

    if services.postgres_bindir() is None:
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl): apt-get install postgresql, as .ci/run does")
    # not under pytest's tmp (mode 0700): under root, PostgreSQL's unprivileged user must enter the folder
    root = Path(tempfile.mkdtemp(prefix="imdbclf-services-"))
    config = services.Config(root=root, pg_port=free_port(), mlflow_port=free_port(), workers=1)
    try:
        yield services.up(config)
    finally:
        services.down(config)
        shutil.rmtree(root, ignore_errors=True)
