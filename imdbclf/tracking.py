"""Where the MLflow store is, one run per stage execution, and the logging helpers.

The default store is embedded in the repository: `sqlite:///<root>/mlflow.db` with artifacts in
`<root>/mlartifacts`. `<root>` is the repository the user works in, also when DVC runs a queued
experiment in a temp copy under `.dvc/tmp/exps/`, so every experiment lands in one store.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import psutil
import requests
import sqlalchemy
from mlflow.tracking import MlflowClient

from imdbclf import console
from imdbclf.errors import Interrupted, UserError, interrupt_exit_code
from imdbclf.params import Params, TrackingParams
from imdbclf.paths import prepared, project_root

if TYPE_CHECKING:
    from mlflow.data.pandas_dataset import PandasDataset

    from imdbclf.data import Split

SQLITE_MAGIC = b"SQLite format 3\x00"
HEARTBEAT_TAG = "heartbeat"
# set by setup() from params.tracking: how often a run's heartbeat is written, and when it is stale
_heartbeat = {"every_s": TrackingParams().run_heartbeat_s, "stale_after_s": TrackingParams().run_stale_after_s}
# The `run_type` tag of every run: a stage execution, a tuning trial (its child), a retrain seed (its child).
RUN_TYPES = ("stage", "trial", "seed")
# What the experiment page opens on: MLflow 3 opens an experiment without this tag on its GenAI pages.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
# The MLflow input context of each split.
SPLIT_CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def tracking_uri(params: Params) -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if params.tracking.uri:
        return params.tracking.uri
    return f"sqlite:///{project_root() / 'mlflow.db'}"


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
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - MLflow wraps the sqlite error in several types
            if "locked" not in str(err).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.5 * 2**attempt)
    return None


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
    """One quick look at a tracking server before any work, instead of minutes of MLflow's retries."""
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s).raise_for_status()
    except requests.RequestException as err:
        raise UserError(f"MLflow tracking server {uri} is not reachable ({type(err).__name__}); "
                        "start it, or unset MLFLOW_TRACKING_URI for the embedded store") from None


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
        check_server(uri, params.tracking.connect_timeout_s)
    return uri


def setup(params: Params) -> str:
    """Point MLflow at the store and make sure the experiment exists; return its id."""
    uri = check_store(params)
    mlflow.set_tracking_uri(uri)
    _heartbeat.update(every_s=params.tracking.run_heartbeat_s, stale_after_s=params.tracking.run_stale_after_s)
    console.quiet_mlflow_messages()
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
    close_dead_runs(experiment_id)
    return experiment_id


def process_tags() -> dict[str, str]:
    """Which process owns a run, so that a run left RUNNING by a killed process can be recognised."""
    me = psutil.Process()
    return {"host": socket.gethostname(), "pid": str(me.pid), "pid_started": f"{me.create_time():.3f}"}


def _alive(pid: int, started: float) -> bool:
    try:
        process = psutil.Process(pid)  # a recycled pid has another start time; a killed child may be a zombie
        return abs(process.create_time() - started) < 1.0 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def close_dead_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the runs left RUNNING by processes that are gone (SIGKILL, a crash, a power cut): no
    signal handler runs then, so the next stage to start closes them. On this host a run's pid tells;
    a run of another host is gone when its heartbeat is older than tracking.run_stale_after_s."""
    client = MlflowClient()
    host = socket.gethostname()
    running = with_retries(lambda: client.search_runs(
        [experiment_id], "attributes.status = 'RUNNING'", max_results=1000))
    closed = []
    for run in running:
        reason = _why_dead(run, host)
        if reason:
            mark_killed(run.info.run_id, reason)
            closed.append(run.info.run_id)
    if closed:
        print(f"tracking: marked {len(closed)} run(s) of dead processes KILLED", file=sys.stderr)
    return closed


def _why_dead(run: mlflow.entities.Run, host: str) -> str | None:
    tags = run.data.tags
    if "pid" not in tags:
        return None
    if tags.get("host") == host:
        if _alive(int(tags["pid"]), float(tags.get("pid_started", 0))):
            return None
        return f"process {tags['pid']} on {host} ended without closing the run (killed?)"
    try:  # a run without a heartbeat (older code) cannot be judged from here: it is left alone
        silent = time.time() - float(tags[HEARTBEAT_TAG])
    except (KeyError, ValueError):
        return None
    if silent <= _heartbeat["stale_after_s"]:
        return None
    return (f"no heartbeat from process {tags['pid']} on {tags.get('host')} for {silent:.0f} s "
            f"(tracking.run_stale_after_s: {_heartbeat['stale_after_s']:g})")


@contextlib.contextmanager
def _heartbeat_of(run_id: str) -> Iterator[None]:
    """Refresh the run's heartbeat tag in the background while it is open, so that other hosts can
    tell a long-running stage from one whose machine went away."""
    stop = threading.Event()

    def beat() -> None:
        client = MlflowClient()
        while not stop.wait(_heartbeat["every_s"]):
            try:
                client.set_tag(run_id, HEARTBEAT_TAG, f"{time.time():.0f}")
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next one
                pass

    thread = threading.Thread(target=beat, name=f"mlflow-heartbeat-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)  # a beat stuck on a store that went down must not hold the run's end


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_tags(stage: str) -> dict[str, str]:
    tags = {"dvc.stage": stage}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git.commit"] = commit
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.exp_baseline")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def log_params(values: Mapping[str, Any]) -> None:
    """Log nested params flat; long values (lists of example reviews) are cut to MLflow's limit."""
    flat = {k: str(v)[:6000] for k, v in flatten(values).items()}
    items = list(flat.items())
    for i in range(0, len(items), 100):
        with_retries(lambda chunk=dict(items[i : i + 100]): mlflow.log_params(chunk))


def log_metrics(values: Mapping[str, float], step: int | None = None) -> None:
    clean = {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}
    with_retries(lambda: mlflow.log_metrics(clean, step=step))


def log_metrics_at_step(step: int, values: Mapping[str, float]) -> None:
    """An epoch logger for FitOptions.on_epoch_end: per-epoch metrics with the epoch as step."""
    log_metrics(values, step=step)


def set_tag(key: str, value: Any) -> None:
    with_retries(lambda: mlflow.set_tag(key, str(value)))


def log_resumed(epochs_done: int, history: Mapping[str, list[float]]) -> None:
    """Tag a run that resumed an interrupted fit, and give it the epochs trained before the interruption
    (they were logged to the interrupted run), so that it shows every epoch."""
    set_tag("resumed_from_epoch", epochs_done)
    for step in range(1, epochs_done + 1):
        log_metrics({key: values[step - 1] for key, values in history.items()}, step=step)


def log_dict(data: Any, artifact_file: str) -> None:
    with_retries(lambda: mlflow.log_dict(data, artifact_file))


def split_datasets(*splits: Split) -> list[PandasDataset]:
    """The splits as MLflow datasets, so that the runs table's Dataset column shows what a run trained
    and was scored on. Only `text` and `label`, what a model reads: MLflow's digest (of the first 10k
    rows and the row count) then tells apart two subsamples of one split file, named as `source`.
    Build them once and log them to many runs: the schema MLflow infers costs ~0.3 s per 25k reviews."""
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas

    with warnings.catch_warnings():  # a relative path "may be interpreted in multiple ways"; int columns
        warnings.simplefilter("ignore")
        datasets = []
        for split in splits:
            frame = pd.DataFrame({"text": split.texts, "label": split.labels})
            dataset = from_pandas(frame, source=prepared(split.name).as_posix(), name=split.name, targets="label")
            dataset.schema  # noqa: B018 - a cached property: inferred here, under the warnings filter
            datasets.append(dataset)
    return datasets


def log_datasets(datasets: Iterable[PandasDataset]) -> None:
    """Log datasets (from split_datasets) as the active run's inputs, each in its split's context."""
    datasets = list(datasets)
    if not datasets:
        return
    contexts = [SPLIT_CONTEXTS[dataset.name] for dataset in datasets]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_retries(lambda: mlflow.log_inputs(datasets, contexts=contexts, tags_list=[None] * len(datasets)))


def log_reused_trial(model: str, result, datasets: Iterable[PandasDataset] = ()) -> None:
    """A finished trial reused from an earlier run still appears as a child of this tune run, with the
    splits it was trained and scored on."""
    tags = {"trial": str(result.number), "reused": "true", "reused_from_run": str(result.mlflow_run_id)}
    with child_run(f"{model}-trial-{result.number}", "trial", tags):
        log_params(result.config)
        log_datasets(datasets)
        for step, values in enumerate(zip(*result.history.values()), start=1):
            log_metrics(dict(zip(result.history, values)), step=step)
        log_metrics({"best_val_accuracy": result.val_accuracy, "best_val_loss": result.val_loss,
                     "seconds": result.seconds})


@contextlib.contextmanager
def _run(name: str, run_type: str, tags: Mapping[str, str], nested: bool = False,
         parent_run_id: str | None = None) -> Iterator[mlflow.ActiveRun]:
    """A run that ends FINISHED, FAILED (an exception) or KILLED (Ctrl-C, SIGTERM); the one place runs
    start, so every run has its `run_type` tag (stage, trial, seed) to filter the runs table by."""
    if run_type not in RUN_TYPES:
        raise ValueError(f"run_type {run_type!r} is not one of {RUN_TYPES}")
    tags = {**tags, "run_type": run_type, **process_tags()}
    run = with_retries(lambda: mlflow.start_run(run_name=name, nested=nested, parent_run_id=parent_run_id,
                                                tags={**tags, HEARTBEAT_TAG: f"{time.time():.0f}"}))
    status = "FAILED"
    try:
        with _heartbeat_of(run.info.run_id):
            yield run
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        with_retries(lambda: mlflow.end_run(status=status))


def mark_killed(run_id: str, reason: str) -> None:
    """Close a run whose process can no longer do it (killed, or its worker lost)."""
    client = MlflowClient()
    if with_retries(lambda: client.get_run(run_id)).info.status != "RUNNING":
        return
    with_retries(lambda: client.set_tag(run_id, "killed_because", reason))
    with_retries(lambda: client.set_terminated(run_id, "KILLED"))


@contextlib.contextmanager
def stage_run(params: Params, stage: str, logged_params: Mapping[str, Any] | None = None) -> Iterator[mlflow.ActiveRun]:
    """One MLflow run per stage execution, tagged with the DVC stage, git commit and experiment."""
    setup(params)
    run_id = None
    try:
        with _run(stage, "stage", run_tags(stage)) as run:
            run_id = run.info.run_id
            if logged_params:
                log_params(logged_params)
            yield run
    except KeyboardInterrupt as err:
        where = f"run {run_id} marked KILLED" if run_id else "before its MLflow run started"
        raise Interrupted(f"{stage}, {where}", interrupt_exit_code(err)) from None


@contextlib.contextmanager
def trial_run(name: str, parent_run_id: str | None, tags: Mapping[str, str]) -> Iterator[mlflow.ActiveRun]:
    """A trial's run: a child of the tune stage's run, also when a worker in another process or on
    another machine trains it (then the parent is named by id, and its DVC and git tags are copied)."""
    active = mlflow.active_run()
    if active is not None and parent_run_id in (None, active.info.run_id):
        with child_run(name, "trial", tags) as run:
            yield run
        return
    inherited = {}
    if parent_run_id:
        parent = with_retries(lambda: MlflowClient().get_run(parent_run_id))
        inherited = _inherited(parent.data.tags)
    with _run(name, "trial", {**inherited, **tags}, nested=active is not None,
              parent_run_id=parent_run_id) as run:
        yield run


@contextlib.contextmanager
def child_run(name: str, run_type: str, tags: Mapping[str, str] | None = None) -> Iterator[mlflow.ActiveRun]:
    """A nested run under the active stage run (run_type `trial` per tuning trial, `seed` per retrain
    seed), with its tags."""
    parent = mlflow.active_run()
    with _run(name, run_type, {**_inherited(parent.data.tags if parent else {}), **(tags or {})}, nested=True) as run:
        yield run


def _inherited(parent_tags: Mapping[str, str]) -> dict[str, str]:
    """The parent's DVC and git tags, which a child run repeats so that it can be filtered by them."""
    return {k: v for k, v in parent_tags.items() if k.startswith(("dvc.", "git."))}


def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    with_retries(lambda: mlflow.log_artifact(str(path), artifact_path))
