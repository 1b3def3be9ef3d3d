"""Shared code of the IMDB sentiment pipeline: params, data, model families, training, tracking."""

import os

# tensorflow_hub.KerasLayer needs tf-keras (Keras 2); it must be chosen before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from imdbclf import console  # noqa: E402 - after the Keras choice, before TensorFlow or MLflow

console.configure()  # library chatter off unless IMDBCLF_VERBOSE=1
