"""The pipeline's own sections of params.yaml (data, split, tracking, tuning, each model's tune and retrain,
evaluate, ensemble, report, serving): pydantic, `extra="forbid"`, so a misspelt key is an error that names it.
`imdbclf.params` puts them together with the families' sections."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from imdbclf.formats import table_suffix

Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # what NumPy, TensorFlow and scikit-learn accept


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    # aclimdb: the aclImdb archive's layout (URL, .tar.gz or directory); table: CSV, TSV, Parquet or JSON
    # Lines; auto: a table when the source's name says one (.csv, .tsv, .parquet, .jsonl), else the archive
    format: Literal["auto", "aclimdb", "table"] = "auto"
    source: str = Field(min_length=1)
    # aclimdb: the sentiment folder (negative/positive) or the star rating in each file name (8 classes)
    label: Literal["sentiment", "rating"] = "sentiment"
    # table: its test set, or null to carve one out of `source` (split.test_fraction, stratified, grouped)
    test_source: str | None = Field(None, min_length=1)
    table_format: Literal["auto", "csv", "tsv", "parquet", "jsonl"] = "auto"  # auto: from the file name
    text_column: str = Field("text", min_length=1)
    label_column: str = Field("label", min_length=1)
    group_column: str | None = Field(None, min_length=1)  # what must not straddle splits (null: none)
    id_column: str | None = Field(None, min_length=1)     # null: row numbers
    sha256: str | None = None
    timeout_s: float = Field(60.0, gt=0)  # each read of a download
    # Limits that a broken or hostile source hits long before the machine's memory or disk does.
    max_download_mb: float = Field(1024, gt=0)
    max_download_s: float = Field(3600, gt=0)
    min_download_kb_s: float = Field(10, ge=0)  # a source that drips is stopped (0: no minimum)...
    rate_window_s: float = Field(30, gt=0)      # ...its rate measured over each window of this many seconds
    max_unpacked_mb: float = Field(2048, gt=0)  # the archive's members together, unpacked
    max_file_mb: float = Field(16, gt=0)  # one member (a review, a movie list)
    max_text_chars: int = Field(100_000, gt=0)

    ACLIMDB_ONLY: ClassVar[tuple[str, ...]] = ("label",)
    TABLE_ONLY: ClassVar[tuple[str, ...]] = ("test_source", "table_format", "text_column", "label_column",
                                             "group_column", "id_column")

    def of_its_format(self) -> dict[str, Any]:
        """The settings that apply to this source's format: what a run logs (a table's run has no
        `label: sentiment`, IMDB's no text column)."""
        other = self.TABLE_ONLY if self.format == "aclimdb" else self.ACLIMDB_ONLY
        return {k: v for k, v in self.model_dump().items() if k not in other}

    @field_validator("source", "test_source")
    @classmethod
    def _not_blank_and_no_login(cls, source: str | None) -> str | None:
        if source is not None and not source.strip():
            raise ValueError("is empty: give the archive's URL, a local .tar.gz or a directory")
        if source is not None and has_login(source):
            raise ValueError("is a URL with a user name or password, which dvc.lock and the experiment's git "
                             "commit would keep: give the URL without them and put the login in ~/.netrc "
                             "(or a file named by the NETRC environment variable), which the download reads")
        return source

    @model_validator(mode="before")
    @classmethod
    def _format_from_the_source(cls, values: Any) -> Any:
        """`format: auto` resolved at once, so every stage sees aclimdb or table."""
        source = values.get("source") if isinstance(values, dict) else None
        if isinstance(source, str) and values.get("format", "auto") == "auto":
            values = {**values, "format": "table" if table_suffix(source) else "aclimdb"}
        return values


class SplitParams(Section):
    val_fraction: float = Field(0.2, gt=0, lt=1)
    # group: no group has texts in both train and validation (IMDB's groups are movies, as the official
    # test set is built; a table's data.group_column); none: texts are split one by one; movie: as group
    group_by: Literal["movie", "group", "none"] = "group"
    # a table without data.test_source: the fraction of it held out as the test set (stratified, grouped)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: Seed = 42
    # Stratified subsamples, for quick runs on small machines; null keeps the whole split.
    max_train: int | None = Field(None, gt=0)
    max_val: int | None = Field(None, gt=0)
    max_test: int | None = Field(None, gt=0)


class TrackingParams(Section):
    experiment: str = "imdb-sentiment"
    # null: the embedded store sqlite:///<root>/mlflow.db; MLFLOW_TRACKING_URI overrides both.
    uri: str | None = None
    registered_model_prefix: str = "imdb-"
    # how long a stage waits for a tracking server (http:// URI) to answer before failing in one line
    connect_timeout_s: float = Field(10.0, gt=0)
    # every later call to a tracking server: each read's timeout, and how often a failed call is retried
    request_timeout_s: float = Field(60.0, gt=0, le=3600)
    request_retries: int = Field(2, ge=0, le=10)
    # a RUNNING run writes a `heartbeat` tag this often; one whose heartbeat is older than
    # run_stale_after_s is marked KILLED by the next stage to start (runs of other hosts: their pid
    # cannot be checked from here)
    run_heartbeat_s: float = Field(60.0, gt=0)
    run_stale_after_s: float = Field(900.0, gt=0)

    @model_validator(mode="after")
    def _stale_after_a_few_missed_beats(self) -> TrackingParams:
        if self.run_stale_after_s < 3 * self.run_heartbeat_s:  # else live runs of other hosts get killed
            raise ValueError(f"run_stale_after_s ({self.run_stale_after_s:g}) must be at least 3 × "
                             f"run_heartbeat_s ({self.run_heartbeat_s:g})")
        return self


class TuningParams(Section):
    """Where the Optuna studies live and how workers that die are noticed (shared by every model)."""

    # null: a journal file at the repository root, shared by every experiment of the repo (several
    # processes on one machine); postgresql://user@host/db for several machines.
    # $IMDBCLF_TUNING_STORAGE overrides it.
    storage: str | None = None
    heartbeat_interval_s: int = Field(30, gt=0)  # database storages: a worker's heartbeat...
    grace_period_s: int = Field(120, gt=0)  # ...missed this long fails its trial (a dead pid on this host: at once)
    max_retry: int = Field(2, ge=0)  # times a trial whose worker died is queued again
    poll_s: float = Field(2.0, gt=0)  # how often a waiting stage or idle worker looks at the queue
    worker_idle_exit_s: float = Field(600.0, gt=0)  # a tune-worker stops after this long without trials


class ComputeParams(Section):
    """What a stage does before hours of training on a CPU: a Keras stage on a machine without a GPU
    times a few training steps first and stops, with its estimate and the command for a CPU-sized run,
    when the stage would take longer than `cpu_limit_hours` (`imdbclf.ops.cpu_guard`). Not a DVC dependency
    of any stage: neither setting changes a result."""

    allow_slow_cpu: bool = False  # true (or IMDBCLF_ALLOW_SLOW_CPU=1): go on whatever the estimate
    cpu_limit_hours: float = Field(4.0, gt=0)
    timed_steps: int = Field(3, gt=0)  # training steps timed after one warm-up step


class TuneParams(Section):
    # How trials are executed, not what they give: not a DVC parameter of tune@ (dvc.yaml lists the others).
    EXECUTION_ONLY: ClassVar[tuple[str, ...]] = ("workers",)
    # ofat: one factor at a time; grid: the full product; tpe: n_trials picked by Optuna's TPE sampler
    strategy: Literal["ofat", "grid", "tpe"] = "ofat"
    n_trials: int | None = Field(None, gt=0)  # tpe only
    # stop unpromising trials early, by validation accuracy per epoch; pruner_args go to Optuna's pruner
    pruner: Literal["none", "median", "successive_halving", "hyperband"] = "none"
    pruner_args: dict[str, Any] = Field(default_factory=dict)
    # local worker processes; auto: one per GPU, or one on a CPU-only machine
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = "auto"
    # auto: from the number of training texts and the batch size (`imdbclf.sizing`); a family that fits
    # in one pass (TF-IDF) has one epoch whatever this says
    epochs: Annotated[int, Field(gt=0)] | Literal["auto"] = 1
    # Trials may train on a stratified subsample of the training split (null: all of it).
    max_train: int | None = Field(None, gt=0)
    seed: Seed = 0
    grid: dict[str, list[Any]]

    @model_validator(mode="after")
    def _grid_not_empty(self) -> TuneParams:
        if not self.grid:
            raise ValueError("grid is empty")
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid.{key} must be a non-empty list")
        if self.strategy == "tpe" and self.n_trials is None:
            raise ValueError("strategy tpe needs n_trials")
        return self


class RetrainParams(Section):
    epochs: Annotated[int, Field(gt=0)] | Literal["auto"] = 1  # auto: as tune's (`imdbclf.sizing`)
    patience: int = Field(3, ge=0)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)


class ModelParams(Section):
    """One entry of `models:`: which family it is, its settings, how to tune and retrain it."""

    family: str
    model: dict[str, Any] = Field(default_factory=dict)
    tune: TuneParams
    retrain: RetrainParams


class EvaluateParams(Section):
    batch_size: int = Field(256, gt=0, le=65536)
    examples: list[str] = Field(default_factory=list)


class EnsembleParams(Section):
    """The ensemble stage (`imdbclf.ensemble`): the models' probabilities, weighted on validation."""

    enabled: bool = True
    members: Literal["all"] | list[str] = "all"  # all: every model of `models:`
    rounds: int = Field(20, ge=1, le=1000)  # greedy picks: each weight is a multiple of 1 / rounds
    folds: int = Field(5, ge=2, le=50)  # validation judged out of fold: each group's weights chosen on the others


class ReportParams(Section):
    bootstrap_samples: int = Field(2000, gt=0, le=100_000)
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: Seed = 0
    worst_examples: int = Field(10, ge=0)


class ServingParams(Section):
    """`python -m imdbclf serve`: what one request may cost, and what an error answer may say."""

    max_request_mb: float = Field(16, gt=0, le=1024)  # a bigger body is answered 413 before it is read whole
    max_error_chars: int = Field(300, ge=40, le=10_000)  # an error's message: one line, cut to this


def has_login(source: str) -> bool:
    """A URL with user:password@ (or user@) before its host."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@", source.strip()))
