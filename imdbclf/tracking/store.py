"""Where the MLflow store is, and whether it can be used: the embedded SQLite store (checked for damage
before any work) or a tracking server (one quick health check instead of minutes of retries).

The default store is embedded in the repository: `sqlite:///<root>/mlflow.db` with artifacts in
`<root>/mlartifacts`. `<root>` is the repository the user works in, also when DVC runs a queued
experiment in a temp copy under `.dvc/tmp/exps/`, so every experiment lands in one store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import mlflow
import requests
import sqlalchemy
from mlflow.tracking import MlflowClient

from imdbclf.errors import UserError
from imdbclf.params import Params
from imdbclf.workspace import project_root

SQLITE_MAGIC = b"SQLite format 3\x00"
# The stores MLflow itself opens (a database URL may name its driver: postgresql+psycopg2).
SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks")
# What the experiment page opens on: MLflow 3 opens an experiment without this tag on its GenAI pages.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def tracking_uri(params: Params) -> str:
    """MLFLOW_TRACKING_URI, else tracking.uri, else the embedded store; one line for a scheme MLflow has no
    store for (`gopher://`), instead of MLflow's KeyError."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        uri, where = os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI"
    elif params.tracking.uri:
        uri, where = params.tracking.uri, "params.yaml: tracking.uri"
    else:
        return f"sqlite:///{project_root() / 'mlflow.db'}"
    scheme = urllib.parse.urlsplit(uri).scheme.split("+")[0].lower()
    if scheme and scheme not in SCHEMES and len(scheme) > 1:  # one letter: a Windows drive
        raise UserError(f"{where}: {scheme}:// is not a store MLflow can use: give https://<host>:<port> for a "
                        "tracking server, or unset it for the embedded store")
    return uri


def bound_requests(params: Params) -> None:
    """Every call MLflow makes to a tracking server: each read within tracking.request_timeout_s, a failed
    call retried tracking.request_retries times (MLflow's own defaults: 120 s and 7 retries, minutes)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", f"{params.tracking.request_timeout_s:g}")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(params.tracking.request_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


@contextlib.contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """`what` must be done within `seconds` in all: a server that answers a byte at a time never lets
    a read time out. In the main thread only (a signal); elsewhere the reads' own timeouts apply."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise UserError(f"{what}: no whole answer within {seconds:g} s (a server that answers a little at a time)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def artifact_root(uri: str) -> Path:
    """Where an embedded store keeps its artifacts: `mlartifacts` beside the database, wherever it is
    (the repository's own folder for any other store)."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts"
    return project_root() / "mlartifacts"


def runs_link(base_url: str, experiment_id: str) -> str:
    """The UI's address of the experiment's runs table: MLflow 3 opens an experiment on its GenAI
    overview unless the link names the machine-learning workflow."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}?workflowType=machine_learning"


def with_retries(fn, attempts: int = 8):
    """SQLite allows one writer: parallel queue workers retry briefly instead of failing."""
    for attempt in range(attempts - 1):
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - MLflow wraps the sqlite error in several types
            if "locked" not in str(err).lower():
                raise
            time.sleep(0.5 * 2**attempt)
    return fn()  # the last attempt: its error is the caller's


def _enable_wal(uri: str) -> None:
    """WAL lets parallel queue workers read while one writes; the mode persists in the file."""
    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path, timeout=60)) as db:
        db.execute("PRAGMA journal_mode=WAL")


def check_sqlite_store(path: Path) -> None:
    """A damaged embedded store fails in one line that names it; a 0-byte file is never taken for a
    new store, which would silently drop every run and the registry."""
    if not path.exists():
        return
    what_to_do = ("restore it from a backup, or move it away to start a new store "
                  "(the next report registers the models again from models/)")
    with open(path, "rb") as f:
        header = f.read(100)
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"MLflow store {path} is empty (0 bytes): its runs and registry are lost; {what_to_do}")
    if not header.startswith(SQLITE_MAGIC) or len(header) < 100:
        raise UserError(f"MLflow store {path} is not an SQLite database; {what_to_do}")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages, valid = int.from_bytes(header[28:32], "big"), header[24:28] == header[92:96]
    if valid and pages * page_size > size:
        raise UserError(f"MLflow store {path} is truncated ({size} of {pages * page_size} bytes); {what_to_do}")


def check_server(uri: str, timeout_s: float) -> None:
    """One quick look at a tracking server before any work, instead of minutes of MLflow's retries: it
    answers, its certificate is one we trust, and it takes our login."""
    cert = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    try:
        with deadline(2 * timeout_s, f"MLflow tracking server {uri}"):
            requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s, verify=cert).raise_for_status()
            answer = requests.get(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search",
                                  params={"max_results": 1}, timeout=timeout_s, verify=cert,
                                  auth=(user, password) if user else None)
    except requests.exceptions.SSLError:
        raise UserError(f"MLflow tracking server {uri}: its TLS certificate is not trusted; set "
                        "MLFLOW_TRACKING_SERVER_CERT_PATH to the team's ca.crt (make services prints it)") from None
    except requests.RequestException as err:
        raise UserError(f"MLflow tracking server {uri} is not reachable ({type(err).__name__}); "
                        "start it, or unset MLFLOW_TRACKING_URI for the embedded store") from None
    if answer.status_code == 401:
        raise UserError(f"MLflow tracking server {uri} refused the login "
                        f"({'MLFLOW_TRACKING_USERNAME=' + user if user else 'none given'}): set "
                        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD as `services add-user` printed them")


@contextlib.contextmanager
def damaged_store_is_a_user_error(uri: str) -> Iterator[None]:
    try:
        yield
    except (mlflow.exceptions.MlflowException, sqlalchemy.exc.SQLAlchemyError, sqlite3.DatabaseError) as err:
        cause = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise UserError(f"MLflow store {uri} cannot be read ({cause}); restore it from a backup "
                        "or move it away to start a new store") from None


def check_store(params: Params) -> str:
    """Fail in one line on a damaged embedded store or a server that does not answer; return the URI.
    Stages that work for minutes before their MLflow run starts call it first."""
    uri = tracking_uri(params)
    if uri.startswith("sqlite:///"):
        check_sqlite_store(Path(uri.removeprefix("sqlite:///")))
        with damaged_store_is_a_user_error(uri):
            with_retries(lambda: _enable_wal(uri))
    elif uri.startswith(("http://", "https://")):
        bound_requests(params)
        check_server(uri, params.tracking.connect_timeout_s)
    return uri


def open_experiment(params: Params) -> str:
    """Point MLflow at the store and make sure the experiment exists; return its id."""
    uri = check_store(params)
    mlflow.set_tracking_uri(uri)
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOL_RECYCLE", "60")
    name = params.tracking.experiment
    client = MlflowClient()

    def get_or_create() -> str:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            for key, value in EXPERIMENT_KIND.items():  # a store from before the tag; a kind chosen in the UI stays
                if key not in experiment.tags:
                    client.set_experiment_tag(experiment.experiment_id, key, value)
            return experiment.experiment_id
        location = artifact_root(uri).as_uri() if uri.startswith("sqlite:///") else None
        try:
            return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
        except mlflow.exceptions.MlflowException:  # another worker created it first
            return client.get_experiment_by_name(name).experiment_id

    with damaged_store_is_a_user_error(uri):
        experiment_id = with_retries(get_or_create)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
