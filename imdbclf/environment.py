"""The process environment the core needs, set where it is needed, never on import."""

from __future__ import annotations

import contextlib
import os

LEGACY_KERAS = "TF_USE_LEGACY_KERAS"


def use_legacy_keras() -> None:
    """Called right before a Keras family's module (and so TensorFlow) is imported.

    tensorflow_hub.KerasLayer needs tf-keras (Keras 2), which TensorFlow picks only if TF_USE_LEGACY_KERAS
    is set when it loads (a value the user set wins). And psycopg's libpq is loaded first: imported after
    TensorFlow, its TLS library aborts the process ("free(): invalid pointer") at the first TLS connection
    to PostgreSQL, which a tune stage makes to the team's studies."""
    os.environ.setdefault(LEGACY_KERAS, "1")
    with contextlib.suppress(ImportError):
        import psycopg  # noqa: F401
