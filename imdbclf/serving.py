"""The MLflow pyfunc of a trained family: raw review strings in, probability and label out."""

from __future__ import annotations

import json
import math
import reprlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema

PACKAGE_DIR = Path(__file__).resolve().parent
# MLflow's hints about type-hinted predict() and integer columns do not apply to raw-text models.
warnings.filterwarnings("ignore", message=r"(?s).*(Add type hints|integer column)")

# What the MLflow UI shows under "how to call": one review per row of a `text` column.
INPUT_EXAMPLE = pd.DataFrame({"text": ["A wonderful film.", "Two hours I will never get back."]})
# `text` is required: `as_texts` rejects a request without it. It is declared optional only so that
# MLflow's own check lets such a request through to `as_texts`: MLflow answers a missing column with
# a message of several lines that echoes the whole request.
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "text", required=False)]),
    outputs=Schema([ColSpec("double", "probability"), ColSpec("long", "label")]),
)


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
            raise InvalidInput(f"no 'text' column in the input{got}: send one review per row, "
                               "e.g. {\"dataframe_records\": [{\"text\": \"A wonderful film.\"}]}")
        values = model_input["text"].tolist()
    elif isinstance(model_input, str):
        values = [model_input]
    elif isinstance(model_input, (pd.Series, np.ndarray)):
        values = np.ravel(model_input).tolist()
    else:
        values = list(model_input)
    if not values:
        raise InvalidInput("no reviews in the input: send at least one row with a 'text' value")
    for row, value in enumerate(values):
        if problem := _problem(value):
            raise InvalidInput(f"text[{row}] {problem}: each review must be a non-empty string")
    return values


def predictions_frame(proba: np.ndarray, threshold: float = 0.5) -> pd.DataFrame:
    return pd.DataFrame({"probability": proba.astype(float), "label": (proba >= threshold).astype(int)})


class ReviewClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        import imdbclf  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow loads
        from imdbclf import families

        self.family = families.load(Path(context.artifacts["model_dir"]))

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        return predictions_frame(self.family.predict_proba(as_texts(model_input)))


def log_model(model_dir: Path, registered_name: str | None, requirements: Path | None = None):
    """Log a saved family as a pyfunc (with the package as code) and register it, with its signature
    (a `text` string column in; `probability` and `label` out) and an input example."""
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=ReviewClassifier(),
        artifacts={"model_dir": str(model_dir)},
        code_paths=[str(PACKAGE_DIR)],
        registered_model_name=registered_name,
        pip_requirements=str(requirements) if requirements and requirements.exists() else None,
        signature=SIGNATURE,
        input_example=INPUT_EXAMPLE,
    )
