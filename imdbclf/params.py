"""Load and validate params.yaml: the one place that knows its keys.

Every section is a pydantic model with `extra="forbid"`, so a misspelt key is an error that names
it instead of a silently ignored setting. Family-specific sections (`<model>.model` and the tuning
grid) are validated against the family's settings (`imdbclf.settings`, no TensorFlow).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from imdbclf import settings
from imdbclf.errors import PARAMS_FILE, UserError, format_validation_error
from imdbclf.formats import MODEL_NAME
from imdbclf.settings.pipeline import (
    ComputeParams,
    DataParams,
    EnsembleParams,
    EvaluateParams,
    ModelParams,
    ReportParams,
    RetrainParams,
    Section,
    ServingParams,
    SplitParams,
    TrackingParams,
    TuneParams,
    TuningParams,
    has_login,
)
from imdbclf.settings.selection import SelectionParams
from imdbclf.settings.sizing import SizingParams

# The sections by name, for `params.TuneParams` etc.: each is defined in imdbclf.settings (pipeline, selection, sizing).
__all__ = ["ComputeParams", "DataParams", "EnsembleParams", "EvaluateParams", "ModelParams", "Params", "ReportParams",
           "RetrainParams", "SelectionParams", "ServingParams", "SizingParams", "SplitParams", "TrackingParams",
           "TuneParams", "TuningParams", "check_model_name", "has_login", "load", "model_name_problem", "parse"]

MAX_PARAMS_BYTES = 1 << 20  # params.yaml is a page of settings; a bigger file is not one
class Params(Section):
    data: DataParams
    split: SplitParams = SplitParams()
    models: list[str] = Field(min_length=1)
    tracking: TrackingParams = TrackingParams()
    tuning: TuningParams = TuningParams()
    compute: ComputeParams = ComputeParams()
    evaluate: EvaluateParams = EvaluateParams()
    report: ReportParams = ReportParams()
    selection: SelectionParams = SelectionParams()
    sizing: SizingParams = SizingParams()
    serving: ServingParams = ServingParams()
    ensemble: EnsembleParams = EnsembleParams()
    model_sections: dict[str, ModelParams] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _models_once_each(cls, models: list[str]) -> list[str]:
        for name in models:
            if not MODEL_NAME.fullmatch(name):
                raise ValueError(model_name_problem(name))
        twice = sorted({name for name in models if models.count(name) > 1})
        if twice:
            raise ValueError(f"lists {', '.join(twice)} more than once")
        return models

    @model_validator(mode="after")
    def _ensemble_of_listed_models(self) -> Params:
        if "ensemble" in self.models:
            raise ValueError("models: 'ensemble' is the ensemble stage's own name: call the model otherwise")
        if self.ensemble.members != "all":
            if unknown := [m for m in self.ensemble.members if m not in self.models]:
                raise ValueError(f"ensemble.members: {', '.join(unknown)} not in models ({', '.join(self.models)})")
            if len(set(self.ensemble.members)) != len(self.ensemble.members) or len(self.ensemble.members) < 2:
                raise ValueError("ensemble.members: name at least two different models, or all")
        return self

    def model(self, name: str) -> ModelParams:
        check_model_name(name)
        if name not in self.model_sections:
            raise UserError(f"{PARAMS_FILE}: model '{name}' has no section (known: {sorted(self.model_sections)})")
        return self.model_sections[name]


_TOP_LEVEL = set(Params.model_fields) - {"model_sections"}


def model_name_problem(name: object) -> str:
    return (f"model name {str(name)[:80]!r} is not a name: a letter, then up to 63 letters, digits or "
            f"underscores (it becomes a stage, a path and a command's argument)")


def check_model_name(name: str) -> str:
    """The model name a stage or worker was started with, refused unless it is one (MODEL_NAME)."""
    if not MODEL_NAME.fullmatch(name):
        raise UserError(model_name_problem(name))
    return name


def parse(raw: dict[str, Any]) -> Params:
    """Validate a params dict; a top-level mapping with a `family` key is a model section."""
    if not isinstance(raw, dict):
        raise UserError(f"{PARAMS_FILE}: expected a mapping at the top level")
    top = {k: v for k, v in raw.items() if k in _TOP_LEVEL}
    sections = {k: v for k, v in raw.items() if k not in _TOP_LEVEL}
    for key, value in sections.items():
        if not (isinstance(value, dict) and "family" in value):
            raise UserError(f"{PARAMS_FILE}: unknown key '{key}'")
    try:
        params = Params.model_validate(top)
        models = {}
        for name, section in sections.items():
            try:
                models[name] = ModelParams.model_validate(section)
            except ValidationError as err:
                raise UserError(format_validation_error(err, name)) from None
    except ValidationError as err:
        raise UserError(format_validation_error(err)) from None
    params = params.model_copy(update={"model_sections": models})
    for name in params.models:  # each family's own schema (imdbclf.settings: pydantic, no family's code)
        settings.validate_section(name, params.model(name))
    return params


def load(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: not found (run from the repository root)")
    if path.stat().st_size > MAX_PARAMS_BYTES:
        raise UserError(f"{path}: {path.stat().st_size:,} bytes, more than a params file's {MAX_PARAMS_BYTES:,}")
    try:
        raw = yaml.load(path.read_text(), Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader without aliases
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML: {' '.join(str(err).split())[:300]}") from None
    return parse(raw or {})


class NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing aliases (`*name`): params.yaml needs none, and nested aliases expand
    exponentially (a 2 kB "billion laughs" file is gigabytes once expanded)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"an alias (*{event.anchor}) is not allowed here",
                                              event.start_mark)
        return super().compose_node(parent, index)


# YAML 1.2's floats, as DVC writes them (`dvc exp run -S lr=0.00005` writes 5e-05): PyYAML follows YAML
# 1.1, which reads a float without a dot as a string.
NoAliasLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$"
               r"|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."))

