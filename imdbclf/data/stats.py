"""What metrics/data.json says of the splits."""

from __future__ import annotations

import numpy as np
import pandas as pd


def split_stats(splits: dict[str, pd.DataFrame]) -> dict:
    """Counts, class balance, lengths and exact duplicates (reported, never dropped)."""
    stats: dict = {"splits": {}, "duplicates": {"within": {}, "across": {}}}
    for name, frame in splits.items():
        words = frame["text"].str.split().str.len()
        stats["splits"][name] = {
            "count": int(len(frame)),
            "positive": int(frame["label"].sum()),
            "negative": int((frame["label"] == 0).sum()),
            "positive_fraction": round(float(frame["label"].mean()), 4),
            "words_mean": round(float(words.mean()), 1),
            "words_median": float(np.median(words)),
            "words_p95": float(np.percentile(words, 95)),
            "words_max": int(words.max()),
        }
        stats["duplicates"]["within"][name] = int(frame["text"].duplicated().sum())
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = set(splits[a]["text"]) & set(splits[b]["text"])
            stats["duplicates"]["across"][f"{a}-{b}"] = len(shared)
    if all(frame["movie"].notna().all() for frame in splits.values()):
        movies = {name: set(frame["movie"]) for name, frame in splits.items()}
        stats["movies"] = {
            "per_split": {name: len(found) for name, found in movies.items()},
            "shared": {f"{a}-{b}": len(movies[a] & movies[b]) for i, a in enumerate(names) for b in names[i + 1 :]},
        }
    return stats
