"""A small, imbalanced table that is not IMDB's binary task, built from the real archive: about 1,000
reviews in three classes from the stars (1–2 stars "bad", 3–4 and 7–8 "mixed", 9–10 "good"), sampled
near 65 / 10 / 25 %, with the movie as the group column. What a user's own data often looks like: few
texts, one rare class. `python -m bench.own_table OUT.csv [N]` writes it; run it as docs/extending.md says.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import archive
from imdbclf import data

SHARES = {"bad": 0.65, "mixed": 0.10, "good": 0.25}
STARS = {1: "bad", 2: "bad", 3: "mixed", 4: "mixed", 7: "mixed", 8: "mixed", 9: "good", 10: "good"}


def build(out: Path, n: int = 1000, seed: int = 0) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        data.fetch_archive(str(archive()), Path(tmp) / "raw")
        frames = [data.read_reviews(Path(tmp) / "raw", split, label="rating", movies_required=True)
                  for split in ("train", "test")]
    reviews = pd.concat(frames, ignore_index=True)
    reviews["grade"] = reviews["label"].map(STARS)
    rng = np.random.default_rng(seed)
    picked = [reviews[reviews["grade"] == grade].sample(int(round(share * n)), random_state=rng.integers(2**31))
              for grade, share in SHARES.items()]
    table = pd.concat(picked).sample(frac=1, random_state=seed)
    table = table.rename(columns={"id": "review_id", "text": "review", "movie": "movie_id"})
    table = table[["review_id", "movie_id", "review", "grade"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return table


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bench.own_table OUT.csv [ROWS]")
    table = build(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
    shares = table["grade"].value_counts(normalize=True).round(3).to_dict()
    print(f"{sys.argv[1]}: {len(table)} reviews of {table['movie_id'].nunique()} movies; classes {shares}")
