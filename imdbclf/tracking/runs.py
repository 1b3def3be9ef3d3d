"""One MLflow run per stage execution, a child run per tuning trial and retrain seed; every run ends
FINISHED, FAILED or KILLED, and a run whose process died is recognised and closed by the next stage.

On this host a run's pid tells whether its process is alive; a run of another host is judged by its
`heartbeat` tag, which a background thread refreshes while the run is open.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.tracking import MlflowClient

from imdbclf import processes
from imdbclf.errors import Interrupted, interrupt_exit_code
from imdbclf.params import Params
from imdbclf.settings.pipeline import TrackingParams
from imdbclf.tracking.log import log_datasets, log_metrics, log_params
from imdbclf.tracking.store import open_experiment, with_retries

if TYPE_CHECKING:
    from mlflow.data.pandas_dataset import PandasDataset

HEARTBEAT_TAG = "heartbeat"
# set by setup() from params.tracking: how often a run's heartbeat is written, and when it is stale
_heartbeat = {"every_s": TrackingParams().run_heartbeat_s, "stale_after_s": TrackingParams().run_stale_after_s}
# The `run_type` tag of every run: a stage execution, a tuning trial (its child), a retrain seed (its child).
RUN_TYPES = ("stage", "trial", "seed")


def setup(params: Params) -> str:
    """Open the store and the experiment (`store.open_experiment`), and close the runs that dead
    processes left RUNNING; return the experiment's id."""
    _heartbeat.update(every_s=params.tracking.run_heartbeat_s, stale_after_s=params.tracking.run_stale_after_s)
    experiment_id = open_experiment(params)
    close_dead_runs(experiment_id)
    return experiment_id


def process_tags() -> dict[str, str]:
    """Which process owns a run, so that a run left RUNNING by a killed process can be recognised."""
    me = processes.identity()
    return {"host": str(me["host"]), "pid": str(me["pid"]), "pid_started": f"{me['started']:.3f}"}


def close_dead_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the runs left RUNNING by processes that are gone (SIGKILL, a crash, a power cut): no
    signal handler runs then, so the next stage to start closes them. On this host a run's pid tells;
    a run of another host is gone when its heartbeat is older than tracking.run_stale_after_s."""
    client = MlflowClient()
    host = processes.host()
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
        if processes.is_alive(int(tags["pid"]), float(tags.get("pid_started", 0))):
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
