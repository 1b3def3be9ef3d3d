"""The reuse key: a hash of everything a trial's result depends on besides its own hyperparameters
(data, the family's validated settings, the tuning budget, the code the trial runs, precision and
device). A finished trial with the same key and config is reused instead of retrained, so an
interrupted tune resumes where it stopped, a queued experiment reuses the workspace's trials, and stale
results are never reused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from imdbclf import codedeps, families
from imdbclf.data.download import sha256_of
from imdbclf.families import Family
from imdbclf.settings.pipeline import ModelParams
from imdbclf.settings.selection import SelectionParams
from imdbclf.settings.sizing import SizingParams

TRIAL_CODE = Path("imdbclf/tuning/workers.py")  # runs a trial: part of the reuse key, with the family's code


def reuse_key(**depends_on: Any) -> str:
    return hashlib.sha256(json.dumps(depends_on, sort_keys=True, default=str).encode()).hexdigest()[:20]


def trial_key(family: Family, section: ModelParams, data_files: list[Path],
              selection: SelectionParams | None = None, sizing: SizingParams | None = None) -> str:
    """Everything a trial's result depends on besides its hyperparameters: the data, the family's
    settings with defaults filled in (writing a default out changes nothing), the tuning budget, the
    code the trial runs (its family and what that imports, and the trial runner) and what training
    resolves at run time (device, precision: `mixed_precision: auto` differs on a GPU); and the selection
    rule, which picks the trial's best epoch and resolves its `auto` class weights; the sizing rule of
    `auto` batch sizes and epochs."""
    code = codedeps.closure(families.family_module(section.family)) + [TRIAL_CODE]
    tune = section.tune
    return reuse_key(data=[sha256_of(path) for path in data_files], family=section.family,
                     model=family.config.model_dump(), epochs=tune.epochs, max_train=tune.max_train, seed=tune.seed,
                     code=codedeps.digest(code), runtime=family.runtime(),
                     selection=(selection or SelectionParams()).model_dump(),
                     sizing=(sizing or SizingParams()).model_dump())
