"""The MLflow pyfunc of a trained family: raw text strings in; the predicted class (`label`), its
`probability` and the `probabilities` of every class out (IMDB's sentiment models also `sentiment`)."""

from __future__ import annotations

import json
import math
import re
import reprlib
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Map

from imdbclf import codedeps
from imdbclf.data import BINARY
from imdbclf.errors import UserError
from imdbclf.families.base import binary_matrix, predicted_labels

PACKAGE_DIR = Path(__file__).resolve().parent
REQUIREMENTS = PACKAGE_DIR.parent / "requirements.txt"  # the pinned versions, read (never repeated) here
# What scoring imports whatever the family (this module, the package's __init__, data and the
# families' base), by the names in requirements.txt; each family adds its own (`scoring_packages` in settings.FAMILIES).
SCORING_PACKAGES = ("mlflow", "numpy", "pandas", "pydantic", "scikit-learn", "tqdm")
# MLflow's hint about integer columns (the signature's `label`) does not apply: it is a class, not a number.
NOT_FOR_US = r"(?s).*integer column"

# What the MLflow UI shows under "how to call": one text per row of a `text` column (words of no domain:
# the model may classify support tickets as well as reviews).
INPUT_EXAMPLE = pd.DataFrame({"text": ["The first text to classify.", "Another one."]})


def signature(classes: Sequence[str]) -> ModelSignature:
    """A `text` column in; `probability`, `label` and `probabilities` out, and `sentiment` only for a
    sentiment model (IMDB's negative/positive). `text` is required: `as_texts` rejects a request without
    it. It is declared optional only so that MLflow's own check lets such a request through to
    `as_texts`: MLflow answers a missing column with a message of several lines that echoes the request."""
    out = [ColSpec("double", "probability"), ColSpec("string", "label")]
    if tuple(classes) == BINARY:
        out.append(ColSpec("string", "sentiment", required=False))
    return ModelSignature(inputs=Schema([ColSpec("string", "text", required=False)]),
                          outputs=Schema([*out, ColSpec(Map(DataType.double), "probabilities")]))


class InvalidInput(MlflowException):
    """Bad input, answered by `mlflow models serve` with HTTP 400 and this one line, no stack trace.

    The scoring server answers any other exception from predict with a stack trace in the body, and
    rewrites an MlflowException's message to "Failed to predict data '<the request>'. \\nError: ..."
    (several lines, echoing every review). It writes the body with `serialize_as_json`, which here
    keeps the line that was raised.
    """

    def __init__(self, reason: str):
        super().__init__(reason, error_code=INVALID_PARAMETER_VALUE)
        self.reason = reason

    def serialize_as_json(self) -> str:
        return json.dumps({"error_code": self.error_code, "message": self.reason})


def _problem(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "is null"
    if not isinstance(value, str):
        return f"is {reprlib.repr(value)} ({type(value).__name__}), not a string"
    if not value.strip():
        return "is an empty string"
    return None


def as_texts(model_input: pd.DataFrame | pd.Series | np.ndarray | Sequence[str] | str) -> list[str]:
    """The reviews in a DataFrame's `text` column, a Series, an array, a list or one string.

    Raises InvalidInput, naming the column or the first bad value, when there is no `text` column, no
    review, or a review that is null, empty or not a string: scoring "None" or "42" as a review
    would answer a mistake with a confident probability.
    """
    if isinstance(model_input, pd.DataFrame):
        if "text" not in model_input.columns:  # also an empty request: MLflow turns [] into no columns
            got = f" (columns: {', '.join(map(str, model_input.columns))})" if len(model_input.columns) else ""
            raise InvalidInput(f"no 'text' column in the input{got}: send one text per row, "
                               "e.g. {\"dataframe_records\": [{\"text\": \"The first text to classify.\"}]}")
        values = model_input["text"].tolist()
    elif isinstance(model_input, str):
        values = [model_input]
    elif isinstance(model_input, (pd.Series, np.ndarray)):
        values = np.ravel(model_input).tolist()
    else:
        values = list(model_input)
    if not values:
        raise InvalidInput("no texts in the input: send at least one row with a 'text' value")
    for row, value in enumerate(values):
        if problem := _problem(value):
            raise InvalidInput(f"text[{row}] {problem}: each text must be a non-empty string")
    return values


def predictions_frame(proba: np.ndarray | Sequence[float], classes: Sequence[str] = BINARY) -> pd.DataFrame:
    """What a prediction says, the same in the served model, `python -m imdbclf predict` and the report:
    the predicted class's name (`label`), its `probability` and every class's (`probabilities`); a
    sentiment model (IMDB's negative/positive) also says `sentiment`, the label, as it always did.
    `proba`: an (n, K) matrix, or one probability of the positive class per text."""
    proba = np.asarray(proba, dtype=float)
    proba = binary_matrix(proba) if proba.ndim == 1 else proba
    label = predicted_labels(proba)
    names = np.array([str(c) for c in classes], dtype=object)[label]
    frame = pd.DataFrame({"probability": proba[np.arange(len(proba)), label], "label": names})
    if tuple(classes) == BINARY:
        frame["sentiment"] = names
    frame["probabilities"] = [dict(zip(map(str, classes), map(float, row))) for row in proba]
    return frame


def predictions(texts: Sequence[str], frame: pd.DataFrame) -> list[dict]:
    """Each text with its prediction (a `predictions_frame`), as JSON-ready dicts: what the CLI and
    evaluate print and write."""
    return [{"text": text, **row} for text, row in zip(texts, frame.to_dict("records"))]


class ReviewClassifier(mlflow.pyfunc.PythonModel):
    # Raw review strings, checked by `as_texts`: MLflow's validation from predict()'s type hints (and its
    # warning, at class definition, that there are none) does not apply.
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        from imdbclf import families

        self.family = families.load_family(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        return predictions_frame(self.family.predict_proba(as_texts(model_input)), self.family.classes)


def canonical(name: str) -> str:
    """A distribution's name as pip compares them: `tf_keras` is `tf-keras`, `PyYAML` is `pyyaml`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """requirements.txt's requirement lines by canonical package name; comments and pip options skipped."""
    if not requirements.is_file():
        raise UserError(f"{requirements}: not found: the logged model's pip requirements are read from it")
    pins = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-") and (name := re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)):
            pins[canonical(name.group(0))] = line
    return pins


def pip_requirements(family: str | Sequence[str], requirements: Path = REQUIREMENTS) -> list[str]:
    """The lines of requirements.txt that scoring a `family` model (or an ensemble of these families) needs,
    and no other: the environment that `mlflow models serve --env-manager virtualenv` or `mlflow models
    build-docker` builds from the logged model has no DVC, Optuna or matplotlib, and a TF-IDF model's has
    no TensorFlow either."""
    from imdbclf import families

    names = [family] if isinstance(family, str) else list(family)
    wanted = (*SCORING_PACKAGES, *(p for name in names for p in families.FAMILIES[name].scoring_packages))
    pins = pinned(requirements)
    if missing := [name for name in wanted if canonical(name) not in pins]:
        raise UserError(f"{requirements}: no pinned {', '.join(missing)}, which scoring a {', '.join(names)} "
                        "model needs")
    return list(dict.fromkeys(pins[canonical(name)] for name in wanted))


def code_files(family: str | Sequence[str], ensemble: bool = False) -> list[Path]:
    """The package's files that scoring a `family` model (or an ensemble of these families) imports,
    relative to the repository root: this module, the families' base and the family's module (an
    ensemble: `imdbclf.ensemble` and its members'), with what they import."""
    from imdbclf import families

    names = [family] if isinstance(family, str) else list(family)
    modules = [families.family_module(name) for name in names] + (["imdbclf.ensemble"] if ensemble else [])
    return codedeps.closure(__name__, families.__name__, *modules)


def log_model(model_dir: Path, registered_name: str | None, requirements: Path = REQUIREMENTS):
    """Log a saved family as a pyfunc and register it, with its signature (a `text` string column in;
    `probability`, `label`, `sentiment` and `probabilities` out), an input example, and only what scoring needs: the
    package's files it imports as code, the pinned packages it imports as pip requirements."""
    from imdbclf import families

    meta = families.saved_meta(model_dir)
    scored = families.scoring_families(meta)
    with tempfile.TemporaryDirectory(prefix="imdbclf-code-") as tmp:
        code = code_files(scored, ensemble=meta["family"] == families.ENSEMBLE)
        for file in code:  # a copy of the package with just these files, as it is laid out
            (Path(tmp) / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(codedeps.ROOT / file, Path(tmp) / file)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=NOT_FOR_US)
            return mlflow.pyfunc.log_model(
                name="model",
                python_model=ReviewClassifier(),
                artifacts={"model_dir": str(model_dir)},
                code_paths=[str(Path(tmp) / PACKAGE_DIR.name)],
                registered_model_name=registered_name,
                pip_requirements=pip_requirements(scored, requirements),
                signature=signature(meta.get("classes", BINARY)),
                input_example=INPUT_EXAMPLE,
            )
