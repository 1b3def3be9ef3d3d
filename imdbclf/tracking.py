"""Where the MLflow store is, one run per stage execution, and the logging helpers.

The default store is embedded in the repository: `sqlite:///<root>/mlflow.db` with artifacts in
`<root>/mlartifacts`. `<root>` is the repository the user works in, also when DVC runs a queued
experiment in a temp copy under `.dvc/tmp/exps/`, so every experiment lands in one store.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from imdbclf.params import Params
from imdbclf.paths import project_root


def tracking_uri(params: Params) -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if params.tracking.uri:
        return params.tracking.uri
    return f"sqlite:///{project_root() / 'mlflow.db'}"


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


def setup(params: Params) -> str:
    """Point MLflow at the store and make sure the experiment exists; return its id."""
    uri = tracking_uri(params)
    if uri.startswith("sqlite:///"):
        with_retries(lambda: _enable_wal(uri))
    mlflow.set_tracking_uri(uri)
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOL_RECYCLE", "60")
    name = params.tracking.experiment
    client = MlflowClient()

    def get_or_create() -> str:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = None
        if uri.startswith("sqlite:///"):  # artifacts beside the database, wherever it is
            location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
        try:
            return client.create_experiment(name, artifact_location=location)
        except mlflow.exceptions.MlflowException:  # another worker created it first
            return client.get_experiment_by_name(name).experiment_id

    experiment_id = with_retries(get_or_create)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


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


def log_dict(data: Any, artifact_file: str) -> None:
    with_retries(lambda: mlflow.log_dict(data, artifact_file))


def log_reused_trial(model: str, result) -> None:
    """A finished trial reused from an earlier run still appears as a child of this tune run."""
    tags = {"trial": str(result.number), "reused": "true", "reused_from_run": str(result.mlflow_run_id)}
    with child_run(f"{model}-trial-{result.number}", tags):
        log_params(result.config)
        for step, values in enumerate(zip(*result.history.values()), start=1):
            log_metrics(dict(zip(result.history, values)), step=step)
        log_metrics({"best_val_accuracy": result.val_accuracy, "best_val_loss": result.val_loss,
                     "seconds": result.seconds})


@contextlib.contextmanager
def _run(name: str, tags: Mapping[str, str], nested: bool = False) -> Iterator[mlflow.ActiveRun]:
    """A run that ends FINISHED, FAILED (an exception) or KILLED (Ctrl-C / SIGINT)."""
    run = with_retries(lambda: mlflow.start_run(run_name=name, nested=nested, tags=dict(tags)))
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        with_retries(lambda: mlflow.end_run(status=status))


@contextlib.contextmanager
def stage_run(params: Params, stage: str, logged_params: Mapping[str, Any] | None = None) -> Iterator[mlflow.ActiveRun]:
    """One MLflow run per stage execution, tagged with the DVC stage, git commit and experiment."""
    setup(params)
    with _run(stage, run_tags(stage)) as run:
        if logged_params:
            log_params(logged_params)
        yield run


@contextlib.contextmanager
def child_run(name: str, tags: Mapping[str, str] | None = None) -> Iterator[mlflow.ActiveRun]:
    """A nested run under the active stage run (one per tuning trial, one per seed), with its tags."""
    parent = mlflow.active_run()
    inherited = {k: v for k, v in (parent.data.tags if parent else {}).items() if k.startswith(("dvc.", "git."))}
    with _run(name, {**inherited, **(tags or {})}, nested=True) as run:
        yield run


def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    with_retries(lambda: mlflow.log_artifact(str(path), artifact_path))
