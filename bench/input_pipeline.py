"""The training input pipeline alone, on the real training split at sequence length 128: tokenized,
batched examples delivered per second from the second pass on, with the per-split cache (tokenize
once, as the hub_encoder family trains) and without it (tokenize every batch of every epoch).
Writes metrics/bench/input_pipeline.json (cached_eps, uncached_eps; target: ≥ 20,000 and ≥ 5×)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.common import archive, converted_minilm, write_result

SEQ_LEN, BATCH = 128, 32


def examples_per_second(dataset, passes: int = 2) -> float:
    """Throughput of the last of `passes` full passes (the first warms caches and tracing)."""
    for _ in range(passes):
        started, count = time.perf_counter(), 0
        for _, labels in dataset:
            count += int(labels.shape[0])
        seconds = time.perf_counter() - started
    return count / seconds


def main() -> None:
    import tensorflow as tf

    from imdbclf import data
    from imdbclf.families.keras.hub_encoder import HubEncoder, HubEncoderConfig

    tmp = tempfile.TemporaryDirectory()
    os.environ["DVC_ROOT"] = tmp.name  # a fresh, empty .cache/features: the one-time cost is measured too
    data.fetch_archive(str(archive()), Path(tmp.name) / "raw")
    train, _ = data.split_train_val(data.read_reviews(Path(tmp.name) / "raw", "train"), 0.2, seed=42)
    split = data.Split.from_frame("train", train)
    preprocessor, encoder = converted_minilm()
    family = HubEncoder(HubEncoderConfig(preprocessor=str(preprocessor), encoder=str(encoder), seq_len=SEQ_LEN))
    family.encoder = family.make_encoder(split.texts)

    uncached = (tf.data.Dataset.from_tensor_slices((list(split.texts), split.labels))
                .shuffle(len(split), seed=0).batch(BATCH)
                .map(lambda texts, labels: (family.encoder(texts), labels), num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))
    uncached_eps = examples_per_second(uncached)

    started = time.perf_counter()
    family.features(split)  # the one tokenization pass the cache costs (and reuses from disk later)
    tokenize_seconds = time.perf_counter() - started
    cached_eps = examples_per_second(family.dataset(split, BATCH, shuffle_seed=0))

    write_result("input_pipeline", {
        "split": "train", "examples": len(split), "seq_len": SEQ_LEN, "batch_size": BATCH,
        "preprocessor": "bert uncased (all-MiniLM-L6-v2 vocabulary, converted)",
        "cached_eps": round(cached_eps), "uncached_eps": round(uncached_eps),
        "speedup": round(cached_eps / uncached_eps, 1), "one_time_tokenize_seconds": round(tokenize_seconds, 1),
    })
    tmp.cleanup()


if __name__ == "__main__":
    main()
