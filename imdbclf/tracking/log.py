"""What a run records: params (flattened), metrics, tags, artifacts and the splits as MLflow datasets;
each write retried while the embedded store is busy with another writer."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow

from imdbclf.outputs import prepared_file
from imdbclf.tracking.store import with_retries

if TYPE_CHECKING:
    from mlflow.data.pandas_dataset import PandasDataset

    from imdbclf.data import Split

# The MLflow input context of each split.
SPLIT_CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


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
            dataset = from_pandas(frame, source=prepared_file(split.name).as_posix(), name=split.name, targets="label")
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


def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    with_retries(lambda: mlflow.log_artifact(str(path), artifact_path))
