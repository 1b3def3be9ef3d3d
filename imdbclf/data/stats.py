"""What metrics/data.json says of the splits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from imdbclf.data.splits import BINARY, group_column


def split_stats(splits: dict[str, pd.DataFrame], classes: tuple[str, ...] = BINARY) -> dict:
    """Counts, texts per class, lengths, exact duplicates (reported, never dropped) and the groups each
    split holds (`movies` for IMDB, `groups` for a table's group column)."""
    stats: dict = {"classes": list(classes), "splits": {}, "duplicates": {"within": {}, "across": {}}}
    for name, frame in splits.items():
        words = frame["text"].str.split().str.len()
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
        stats["duplicates"]["within"][name] = int(frame["text"].duplicated().sum())
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = set(splits[a]["text"]) & set(splits[b]["text"])
            stats["duplicates"]["across"][f"{a}-{b}"] = len(shared)
    columns = {group_column(frame) for frame in splits.values()}
    if len(columns) == 1 and (column := columns.pop()):
        groups = {name: set(frame[column]) for name, frame in splits.items()}
        stats[f"{column}s"] = {
            "per_split": {name: len(found) for name, found in groups.items()},
            "shared": {f"{a}-{b}": len(groups[a] & groups[b]) for i, a in enumerate(names) for b in names[i + 1 :]},
        }
    return stats
