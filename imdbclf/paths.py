"""Where each stage reads and writes: the one place that knows the output layout (dvc.yaml mirrors it)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from imdbclf import failpoints
from imdbclf.data import Split
from imdbclf.errors import UserError

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


RAW = Path("data/raw")
PREPARED = Path("data/prepared")
DATA_METRICS = Path("metrics/data.json")


def prepared(split: str) -> Path:
    return PREPARED / f"{split}.parquet"


def tune_metrics(model: str) -> Path:
    return Path("metrics/tune") / f"{model}.json"


def model_dir(model: str) -> Path:
    return Path("models") / model


def seed_dir(model: str, seed: int) -> Path:
    return model_dir(model) / f"seed_{seed}"


CHECKPOINTS = Path("checkpoints")


def checkpoints(model: str, seed: int) -> Path:
    """An interrupted retrain's resume state (`training.TrainingRecord`): this workspace's, not a DVC output."""
    return CHECKPOINTS / model / f"seed_{seed}"


def discard_checkpoints(model: str, seed: int) -> None:
    """Delete a seed's resume state once its model is saved (a finished fit resumes from nothing), and
    the folders above it that this leaves empty."""
    directory = checkpoints(model, seed)
    shutil.rmtree(directory, ignore_errors=True)
    for parent in (directory.parent, CHECKPOINTS):
        with contextlib.suppress(OSError):  # not empty: another model's or seed's
            parent.rmdir()


def history(model: str) -> Path:
    return Path("metrics/history") / f"{model}.csv"


def retrain_metrics(model: str) -> Path:
    return Path("metrics/retrain") / f"{model}.json"


def eval_metrics(model: str) -> Path:
    return Path("metrics/eval") / f"{model}.json"


def eval_dir(model: str) -> Path:
    return Path("metrics/eval") / model


def predictions(model: str, split: str) -> Path:
    """Per-review P(positive) of every seed, with the review's id, movie and label."""
    return eval_dir(model) / ("predictions.parquet" if split == "test" else f"{split}_predictions.parquet")


def code_manifest(model: str, stage: str) -> Path:
    """The source files (and their hashes) that `<stage>@<model>` runs: that stage's code dependency."""
    return Path("metrics/code") / model / f"{stage}.txt"


REPORT_MD = Path("reports/report.md")
REPORT_JSON = Path("metrics/report.json")
REPORT_FIGURES = Path("reports/figures")


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
        failpoints.reached(f"write:{path.name}")
        os.replace(tmp, path)
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


def load_split(name: str) -> Split:
    path = prepared(name)
    if not path.exists():
        raise UserError(f"{path}: not found (run the split stage first: dvc repro split)")
    return Split.from_frame(name, pd.read_parquet(path))
