"""What metrics/data.json says of the splits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from imdbclf.data.splits import BINARY, group_column


def _text_hashes(texts: pd.Series) -> np.ndarray:
    """A 64-bit hash per text: duplicates found without a second copy of every text as a Python string
    (at a million rows the sets of texts took gigabytes; two different texts share a hash with odds of
    about 1 in 10^7 at that size)."""
    return pd.util.hash_pandas_object(texts, index=False).to_numpy()


def split_stats(splits: dict[str, pd.DataFrame], classes: tuple[str, ...] = BINARY) -> dict:
    """Counts, texts per class, lengths, exact duplicates (reported, never dropped) and the groups each
    split holds (`movies` for IMDB, `groups` for a table's group column)."""
    stats: dict = {"classes": list(classes), "splits": {}, "duplicates": {"within": {}, "across": {}}}
    hashes = {name: _text_hashes(frame["text"]) for name, frame in splits.items()}
    for name, frame in splits.items():
        words = frame["text"].str.count(r"\S+")  # as len(text.split()), without a list of every word
        counts = frame["label"].value_counts()
        per_class = {label: int(counts.get(i, 0)) for i, label in enumerate(classes)}
        shown = {"count": int(len(frame))}
        if classes == BINARY:  # IMDB's keys, as before
            shown |= {"positive": per_class["positive"], "negative": per_class["negative"],
                      "positive_fraction": round(float(frame["label"].mean()), 4)}
        stats["splits"][name] = {**shown, "per_class": per_class,
                                 "words_mean": round(float(words.mean()), 1),
                                 "words_median": float(np.median(words)),
                                 "words_p95": float(np.percentile(words, 95)),
                                 "words_max": int(words.max())}
        stats["duplicates"]["within"][name] = int(len(hashes[name]) - len(np.unique(hashes[name])))
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            stats["duplicates"]["across"][f"{a}-{b}"] = len(np.intersect1d(hashes[a], hashes[b]))
    columns = {group_column(frame) for frame in splits.values()}
    if len(columns) == 1 and (column := columns.pop()):
        groups = {name: set(frame[column]) for name, frame in splits.items()}
        stats[f"{column}s"] = {
            "per_split": {name: len(found) for name, found in groups.items()},
            "shared": {f"{a}-{b}": len(groups[a] & groups[b]) for i, a in enumerate(names) for b in names[i + 1 :]},
        }
    return stats
