"""Outputs that appear whole or not at all: written to a temp path beside their place, then renamed."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from imdbclf import crashpoints
from imdbclf.errors import UserError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp path beside `path` that replaces it only when the block completes, so readers (and DVC)
    never see half a file; created like any file (the umask decides its mode, not mkstemp's 0600).
    One stage writes a given path, so a temp file of it that is already there is a killed writer's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a writer that was killed
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        crashpoints.reached(f"write:{path.name}")
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in DISK_FULL:
            raise UserError(f"{path}: {os.strerror(err.errno).lower()} while writing it: free some space and "
                            "rerun (the previous file, if any, is untouched)") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_parquet(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise UserError(f"{path}: not found (run the stage that writes it first: dvc repro)")
    return pd.read_parquet(path)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_json(path: Path) -> Any:
    if not path.exists():
        raise UserError(f"{path}: not found (run the stage that writes it first: dvc repro)")
    return json.loads(path.read_text())
