"""Features of a split, encoded once: in memory for the process, and on disk (shared by tune and retrain,
workers and experiments) for an encoder that learns nothing from the data."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable

import numpy as np

from imdbclf.data import Split
from imdbclf.workspace import cache_dir


def fingerprint(texts: np.ndarray) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def split_fingerprint(split: Split) -> str:
    labels = hashlib.sha256(np.asarray(split.labels, dtype=np.int64).tobytes()).hexdigest()[:16]
    return f"{fingerprint(split.texts)}-{labels}"


def cached(encoder_key: str | None, texts_key: str, encode: Callable[[], dict]) -> dict:
    """`encode()`'s features, read from the disk cache when an earlier process wrote them for this encoder
    (`encoder_key`; None: an encoder that learns from the data, never cached on disk) and these texts."""
    if encoder_key is None:
        return encode()
    path = cache_dir("features") / f"{hashlib.sha256((encoder_key + texts_key).encode()).hexdigest()[:24]}.npz"
    if path.exists():
        with np.load(path) as stored:
            return {name: stored[name] for name in stored.files}
    features = encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own: two workers may tokenize the same split at once, and neither may read the
    # other's half-written file
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp.npz")
    np.savez(tmp, **features)
    os.replace(tmp, path)
    return features
