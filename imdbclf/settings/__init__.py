"""Each family's settings: the schema of its `model:` section (`Config`) and of its tuning grid's values
(`Hyperparameters`), one module per family, with defaults; and their check of a model's section.

Pure pydantic, no TensorFlow and no family's code: every stage validates all of params.yaml (`fetch`
included) at no TensorFlow start-up, and depends on these schemas, not on the families' code. The
family classes import their schema from here.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pydantic import ValidationError

from imdbclf.errors import UserError, format_validation_error
from imdbclf.settings import hub_encoder, lstm, nb_logreg, tfidf_logreg
from imdbclf.settings.strict import Strict

__all__ = ["BY_FAMILY", "Strict", "hyperparameters", "of", "validate", "validate_section"]

# family name → its settings module (`imdbclf.families.registry` maps the same names to the families)
BY_FAMILY: dict[str, ModuleType] = {"lstm": lstm, "tfidf_logreg": tfidf_logreg, "nb_logreg": nb_logreg,
                                    "hub_encoder": hub_encoder}


def of(family: str) -> ModuleType:
    """The module with the family's `Config` and `Hyperparameters`."""
    if family not in BY_FAMILY:
        raise UserError(f"unknown model family '{family}' (known: {', '.join(sorted(BY_FAMILY))})")
    return BY_FAMILY[family]


def validate(schema: type[Strict], values: dict[str, Any], where: str) -> Strict:
    try:
        return schema.model_validate(values)
    except ValidationError as err:
        raise UserError(format_validation_error(err, where)) from None


def hyperparameters(model_name: str, section, values: dict[str, Any]) -> Strict:
    return validate(of(section.family).Hyperparameters, values, f"{model_name}.tune.grid")


def validate_section(model_name: str, section) -> None:
    """Fail at load time, naming the key, on a bad family, model setting or grid value."""
    if section.family not in BY_FAMILY:
        raise UserError(f"params.yaml: {model_name}.family: unknown model family '{section.family}' "
                        f"(known: {', '.join(sorted(BY_FAMILY))})")
    validate(of(section.family).Config, section.model, f"{model_name}.model")
    first = {key: values[0] for key, values in section.tune.grid.items()}
    for key, values in section.tune.grid.items():
        for value in values:
            hyperparameters(model_name, section, {**first, key: value})
