"""Where each stage reads and writes: the one place that knows the output layout (dvc.yaml mirrors it)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

RAW = Path("data/raw")
PREPARED = Path("data/prepared")
DATA_METRICS = Path("metrics/data.json")
PARAMS_CHECKED = Path("metrics/params_checked.txt")  # check-params' mark: fetch and code@ wait for it


def prepared_file(split: str) -> Path:
    return PREPARED / f"{split}.parquet"


def tune_metrics(model: str) -> Path:
    return Path("metrics/tune") / f"{model}.json"


def tune_best(model: str) -> Path:
    """The chosen config, the reuse key of the trials it was chosen from and its validation scores:
    what retrain depends on (never the search's run-to-run bookkeeping)."""
    return Path("metrics/best") / f"{model}.json"


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


def scores_file(model: str) -> Path:
    """The few figures of a model that `dvc exp show` compares across experiments (a DVC metric)."""
    return Path("metrics/scores") / f"{model}.json"


def eval_dir(model: str) -> Path:
    return Path("metrics/eval") / model


def predictions_file(model: str, split: str) -> Path:
    """Per-review P(positive) of every seed, with the review's id, movie and label."""
    return eval_dir(model) / ("predictions.parquet" if split == "test" else f"{split}_predictions.parquet")


def code_manifest(model: str, stage: str) -> Path:
    """The source files (and their hashes) that `<stage>@<model>` runs: that stage's code dependency."""
    return Path("metrics/code") / model / f"{stage}.txt"


# The ensemble stage's: the same records as a model's tune, retrain and evaluate stages, in one folder
ENSEMBLE_METRICS = Path("metrics/ensemble")
ENSEMBLE_MODEL = Path("models/ensemble")


def ensemble_file(name: str) -> Path:
    """tune.json, retrain.json, eval.json, scores.json (its DVC metric), history.csv, roc.csv,
    examples.json, predictions.parquet, val_predictions.parquet."""
    return ENSEMBLE_METRICS / name


REPORT_MD = Path("reports/report.md")
REPORT_JSON = Path("metrics/report.json")
CHAMPION_JSON = Path("metrics/champion.json")  # the report's headline: a DVC metric
REPORT_FIGURES = Path("reports/figures")
