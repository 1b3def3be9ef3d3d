"""The MLflow pyfunc of a trained family: raw review strings in, probability and label out."""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

PACKAGE_DIR = Path(__file__).resolve().parent
# MLflow's hints about type-hinted predict() and integer columns do not apply to raw-text models.
warnings.filterwarnings("ignore", message=r"(?s).*(Add type hints|integer column)")


def as_texts(model_input) -> list[str]:
    """Accept a DataFrame with a `text` column (or a single column), a Series, or a list of strings."""
    if isinstance(model_input, pd.DataFrame):
        column = "text" if "text" in model_input.columns else model_input.columns[0]
        return [str(t) for t in model_input[column]]
    if isinstance(model_input, (pd.Series, np.ndarray)):
        return [str(t) for t in np.ravel(model_input)]
    if isinstance(model_input, str):
        return [model_input]
    return [str(t) for t in model_input]


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
    """Log a saved family as a pyfunc (with the package as code) and register it.

    No input signature: the model accepts a `text` column, a single column, or a plain list of
    strings, which one schema cannot express; `as_texts` does the checking instead.
    """
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=ReviewClassifier(),
        artifacts={"model_dir": str(model_dir)},
        code_paths=[str(PACKAGE_DIR)],
        registered_model_name=registered_name,
        pip_requirements=str(requirements) if requirements and requirements.exists() else None,
    )
