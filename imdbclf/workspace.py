"""The user's repository, also from inside DVC's temp copies of it, and the caches it shares."""

from __future__ import annotations

import os
from pathlib import Path

EXPS_TMP = Path(".dvc") / "tmp" / "exps"


def project_root() -> Path:
    """The user's repository: $DVC_ROOT (or cwd), climbing out of DVC's temp experiment copies,
    so that queued experiments share the repo's MLflow store and caches."""
    root = Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
    parts = root.parts
    for i in range(len(parts) - 3):
        if Path(*parts[i + 1 : i + 4]) == EXPS_TMP:
            return Path(*parts[: i + 1])
    return root


def in_queued_experiment() -> bool:
    """True in DVC's temp copy of the repo, where `dvc queue start` runs an experiment (DVC then
    points $DVC_ROOT at the user's repo, so only the working directory tells)."""
    return f"/{EXPS_TMP.as_posix()}/" in Path.cwd().resolve().as_posix()


def cache_dir(kind: str) -> Path:
    """Caches shared by every experiment of the repo (TF Hub downloads, tokenized splits)."""
    return project_root() / ".cache" / kind
