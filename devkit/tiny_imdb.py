"""Tiny aclImdb-layout data that the tests write themselves: learnable, deterministic."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

POSITIVE = ["great", "wonderful", "brilliant", "moving", "superb", "loved", "excellent", "funny"]
NEGATIVE = ["awful", "boring", "terrible", "dull", "waste", "hated", "poor", "worst"]
NEUTRAL = ["the", "movie", "film", "plot", "actor", "scene", "story", "was", "and", "a", "it", "this"]


def review(label: str, rng: random.Random) -> str:
    cue = POSITIVE if label == "pos" else NEGATIVE
    words = [rng.choice(NEUTRAL) for _ in range(rng.randint(8, 20))] + [rng.choice(cue) for _ in range(3)]
    rng.shuffle(words)
    return " ".join(words).capitalize() + ".<br /><br />" + rng.choice(NEUTRAL) + "."


def reviews(per_class: int, seed: int = 0) -> dict[str, str]:
    """{'train/pos/0_9.txt': text, ...}: per_class reviews per split and class."""
    rng = random.Random(seed)
    files = {}
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            for i in range(per_class):
                rating = rng.randint(7, 10) if label == "pos" else rng.randint(1, 4)
                files[f"{split}/{label}/{i}_{rating}.txt"] = review(label, rng)
    return files


def movie_urls(per_class: int, reviews_per_movie: int = 3) -> dict[str, str]:
    """{'train/urls_pos.txt': ...}: line i names review i's movie, as in the official archive; a movie
    has reviews of both classes, and test movies are not train movies."""
    files = {}
    for offset, split in ((0, "train"), (10_000, "test")):
        for label in ("pos", "neg"):
            lines = [f"http://www.imdb.com/title/tt{offset + i // reviews_per_movie:07d}/usercomments"
                     for i in range(per_class)]
            files[f"{split}/urls_{label}.txt"] = "\n".join(lines) + "\n"
    return files


def write_tree(root: Path, per_class: int = 20, seed: int = 0, movies: bool = True) -> Path:
    for name, text in {**reviews(per_class, seed), **(movie_urls(per_class) if movies else {})}.items():
        path = root / "aclImdb" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "aclImdb" / "README").write_text("tiny test copy\n")
    return root


def write_archive(path: Path, per_class: int = 20, seed: int = 0, extra: dict[str, bytes] | None = None) -> Path:
    """A .tar.gz in the official layout (plus `extra` members, e.g. an unsup review)."""
    members = {f"aclImdb/{k}": v.encode() for k, v in {**reviews(per_class, seed), **movie_urls(per_class)}.items()}
    members["aclImdb/README"] = b"tiny test copy\n"
    members.update(extra or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path
