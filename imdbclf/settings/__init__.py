"""Each family's settings: the schema of its `model:` section (`Config`) and of its tuning grid's values
(`Hyperparameters`), one module per family, with defaults; and their check of a model's section.

Pure pydantic, no TensorFlow and no family's code: every stage validates all of params.yaml (`fetch`
included) at no TensorFlow start-up, and depends on these schemas, not on the families' code. The
family classes import their schema from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from imdbclf.errors import UserError, format_validation_error
from imdbclf.settings import hub_encoder, lstm, nb_logreg, tfidf_logreg
from imdbclf.settings.pipeline import ModelParams
from imdbclf.settings.strict import Strict

__all__ = ["FAMILIES", "FamilyRecord", "Strict", "hyperparameters", "known_family", "of", "validate",
           "validate_section"]


@dataclass(frozen=True)
class FamilyRecord:
    """Everything the pipeline knows of a family by its name, in one place (docs/extending.md)."""

    settings: ModuleType  # its `Config` and `Hyperparameters`: pydantic only, no TensorFlow
    implementation: str  # "module:Class", imported only when a model of the family is built or loaded
    # what scoring its saved model imports beyond the package's base (serving.SCORING_PACKAGES), by the names
    # in requirements.txt: the logged MLflow model's pip requirements. setuptools: tensorflow_hub imports
    # pkg_resources, which setuptools 81+ no longer ships.
    scoring_packages: tuple[str, ...] = ()


FAMILIES: dict[str, FamilyRecord] = {
    "lstm": FamilyRecord(lstm, "imdbclf.families.keras.lstm:BiLSTM", ("tensorflow", "tf-keras")),
    "tfidf_logreg": FamilyRecord(tfidf_logreg, "imdbclf.families.tfidf_logreg:TfidfLogReg", ("scipy", "skops")),
    "nb_logreg": FamilyRecord(nb_logreg, "imdbclf.families.nb_logreg:NbLogReg", ("scipy",)),
    "hub_encoder": FamilyRecord(hub_encoder, "imdbclf.families.keras.hub_encoder:HubEncoder",
                                ("tensorflow", "tf-keras", "tensorflow-hub", "tensorflow-text", "setuptools")),
}


def known_family(family: str, where: str = "") -> FamilyRecord:
    """The family's record; an unknown name is a UserError listing the known ones."""
    if family not in FAMILIES:
        raise UserError(f"{where}unknown model family '{family}' (known: {', '.join(sorted(FAMILIES))})")
    return FAMILIES[family]


def of(family: str) -> ModuleType:
    """The module with the family's `Config` and `Hyperparameters`."""
    return known_family(family).settings


def validate(schema: type[Strict], values: dict[str, Any], where: str) -> Strict:
    try:
        return schema.model_validate(values)
    except ValidationError as err:
        raise UserError(format_validation_error(err, where)) from None


def hyperparameters(model_name: str, section: ModelParams, values: dict[str, Any]) -> Strict:
    return validate(of(section.family).Hyperparameters, values, f"{model_name}.tune.grid")


def validate_section(model_name: str, section: ModelParams) -> None:
    """Fail at load time, naming the key, on a bad family, model setting or grid value."""
    known_family(section.family, f"params.yaml: {model_name}.family: ")
    validate(of(section.family).Config, section.model, f"{model_name}.model")
    first = {key: values[0] for key, values in section.tune.grid.items()}
    for key, values in section.tune.grid.items():
        for value in values:
            hyperparameters(model_name, section, {**first, key: value})
