"""What the streamed fit (`exact_up_to` exceeded: hashed n-grams, SGD by chunks) costs in accuracy: both
linear families on IMDB's own split (20,000 training reviews of make cpu's split, test on the 25,000),
fitted exactly and streamed with the same hyperparameters (the grid's best of make cpu), with the wall
time of each fit. Memory by table size: bench/scale.py.

`python -m bench.streamed_imdb` writes metrics/bench/streamed_imdb.json.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import archive, write_result
from devkit.helpers import tiny_params
from imdbclf import data, families, params
from imdbclf.families import FitOptions

BEST = {"nb_logreg": {"C": 0.3, "ngram_max": 3}, "tfidf_logreg": {"C": 16.0, "ngram_max": 2, "min_df": 2}}
RECORDED_TEXT = {"tfidf_logreg": {"normalize_text": False}, "nb_logreg": {}}  # as make cpu's figures


def splits() -> tuple[data.Split, data.Split, data.Split]:
    with tempfile.TemporaryDirectory() as tmp:
        data.fetch_archive(str(archive()), Path(tmp) / "raw")
        labelled = {s: data.encode_labels(data.read_reviews(Path(tmp) / "raw", s, True), data.BINARY, s)
                    for s in ("train", "test")}
    train, val = data.split_train_val(labelled["train"], 0.2, 42, "group", data.BINARY)
    return tuple(data.Split.from_frame(n, f, data.BINARY) for n, f in (("train", train), ("val", val),
                                                                        ("test", labelled["test"])))


def fit(model: str, streamed: bool, train: data.Split, val: data.Split, test: data.Split) -> dict:
    raw = tiny_params("unused.tar.gz")
    raw[model]["model"].update(RECORDED_TEXT[model], exact_up_to=0 if streamed else 10**9)
    section = params.parse(raw).model(model)
    family = families.create(model, section)
    started = time.perf_counter()
    family.fit(train, val, families.hyperparameters(model, section, BEST[model]), FitOptions(epochs=1, verbose=0))
    seconds = time.perf_counter() - started
    accuracy = float((families.predicted_labels(family.predict_proba(test.texts)) == test.labels).mean())
    return {"model": model, "path": "streamed" if streamed else "exact", "test_accuracy": round(accuracy, 4),
            "fit_seconds": round(seconds, 1)}


def main() -> None:
    train, val, test = splits()
    rows = []
    for model in BEST:
        for streamed in (False, True):
            rows.append(fit(model, streamed, train, val, test))
            print(rows[-1], flush=True)
    write_result("streamed_imdb", {"train": len(train), "test": len(test), "hyperparameters": BEST, "fits": rows})


if __name__ == "__main__":
    main()
