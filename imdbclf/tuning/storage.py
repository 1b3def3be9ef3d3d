"""Where the Optuna studies live: a journal file at the repository root (one machine, any number of
processes) or a database (PostgreSQL, for several machines), shared by every experiment and worker."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy

from imdbclf.errors import UserError
from imdbclf.settings.pipeline import TuningParams
from imdbclf.workspace import project_root

STORAGE_ENV = "IMDBCLF_TUNING_STORAGE"
DEFAULT_JOURNAL = "optuna.journal"


def storage_url(settings: TuningParams) -> str:
    """$IMDBCLF_TUNING_STORAGE, else `tuning.storage`, else a journal file at the repository root that
    every experiment of the repo shares (queued experiments run in temp copies of it)."""
    return os.environ.get(STORAGE_ENV) or settings.storage or str(project_root() / DEFAULT_JOURNAL)


def is_database(url: str) -> bool:
    return "://" in url


def redact_storage_url(url: str) -> str:
    """The storage as printed and logged: a database URL without its password."""
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True) if is_database(url) else url


def open_storage(url: str, settings: TuningParams) -> optuna.storages.BaseStorage:
    """A database URL (postgresql://… for several machines) gets Optuna's heartbeat and retries;
    a file path gets a JournalStorage, made for several processes on one machine."""
    optuna.logging.set_verbosity(logging.ERROR)  # a failed trial is reported by the stage, once
    if is_database(url):
        try:
            with experimental_ok():
                return optuna.storages.RDBStorage(
                    url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=settings.heartbeat_interval_s,
                    grace_period=settings.grace_period_s,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                        settings.max_retry))
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as err:
            cause = str(err).splitlines()[0]
            raise UserError(f"tuning.storage {redact_storage_url(url)}: cannot open it ({cause})") from None
    path = Path(url).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def _file_identity(path: Path | None) -> tuple[int, int] | None:
    try:
        stat = path.stat() if path else None
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino) if stat else None


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Optuna reports a study file deleted mid-run as a failed commit "exceeding max length" (SQLite) or
    a trial in an impossible state (journal); say what happened to which storage instead. Enter it
    once the storage is open."""
    journal = None if is_database(url) else Path(url)
    identity = _file_identity(journal)
    try:
        yield
    except Exception as err:
        if journal and _file_identity(journal) != identity:  # gone, or recreated: its replay fails in many ways
            raise UserError(f"{url}: the Optuna study file was deleted while tuning (by another process?); "
                            "run the stage again to start a new study") from None
        if not isinstance(err, (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)):
            raise
        cause = str(getattr(err, "orig", None) or err.__cause__ or err).splitlines()[0]
        raise UserError(f"{redact_storage_url(url)}: cannot write the Optuna study ({cause})") from None


@contextlib.contextmanager
def experimental_ok() -> Iterator[None]:
    """Optuna calls heartbeats, their retry callback and fail_stale_trials "experimental" (since 2.8):
    we rely on them knowingly, so their warning is not shown where they are used."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
