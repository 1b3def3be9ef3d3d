"""The process environment the core needs, set where it is needed, never on import."""

from __future__ import annotations

import os

LEGACY_KERAS = "TF_USE_LEGACY_KERAS"


def use_legacy_keras() -> None:
    """tensorflow_hub.KerasLayer needs tf-keras (Keras 2), which TensorFlow picks only if this is set
    when it loads: called right before a Keras family's module is imported. A value the user set wins."""
    os.environ.setdefault(LEGACY_KERAS, "1")
