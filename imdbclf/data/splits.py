"""What a model sees of the data (`Split`), and how it is split: stratified by label, grouped by
movie so that validation, like the official test set, holds movies never seen in training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from imdbclf.data.aclimdb import CLASSES
from imdbclf.errors import UserError
from imdbclf.outputs import prepared


def stratified_indices(labels: np.ndarray, n: int | None, seed: int, key: str = "sample size") -> np.ndarray:
    """Sorted indices of a class-balanced subsample of size n (all indices when n is None);
    `key` is the params key that set n, for the error a too small n gets."""
    everything = np.arange(len(labels))
    if n is None or n >= len(labels):
        return everything
    if n < len(CLASSES):
        raise UserError(f"params.yaml: {key}: {n} is too small: a stratified sample needs at least one "
                        f"review of each of the {len(CLASSES)} classes")
    sample, _ = train_test_split(everything, train_size=n, stratify=labels, random_state=seed)
    return np.sort(sample)


def stratified_sample(frame: pd.DataFrame, n: int | None, seed: int, key: str = "sample size") -> pd.DataFrame:
    return frame.iloc[stratified_indices(frame["label"].to_numpy(), n, seed, key)].reset_index(drop=True)


def check_both_classes(frame: pd.DataFrame, split: str, key: str, value: object) -> None:
    """Training, early stopping and every metric need reviews of both classes in each split."""
    counts = [int((frame["label"] == label).sum()) for label in range(len(CLASSES))]
    if min(counts) == 0:
        found = ", ".join(f"{n} {name}" for n, name in zip(counts, CLASSES))
        raise UserError(f"params.yaml: {key}: {value} leaves the {split} split with {found} reviews: "
                        "it needs both classes (change the setting or use more data)")


@dataclass(frozen=True)
class Split:
    """Reviews and their labels (0 negative, 1 positive), as the families consume them."""

    name: str
    texts: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None = None
    movies: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_frame(cls, name: str, frame: pd.DataFrame) -> Split:
        movies = frame["movie"].to_numpy(dtype=object) if "movie" in frame else None
        return cls(name, frame["text"].to_numpy(dtype=object), frame["label"].to_numpy(dtype=np.int64),
                   frame["id"].to_numpy(dtype=object), movies)

    def subsample(self, n: int | None, seed: int, key: str = "sample size") -> Split:
        keep = stratified_indices(self.labels, n, seed, key)
        ids = None if self.ids is None else self.ids[keep]
        movies = None if self.movies is None else self.movies[keep]
        return Split(self.name, self.texts[keep], self.labels[keep], ids, movies)


def movies_for_validation(frame: pd.DataFrame, val_fraction: float, seed: int) -> set[str]:
    """Whole movies, in a seeded random order, taken while they fit into val_fraction of each class:
    a split stratified by label and grouped by movie, so no movie has reviews on both sides."""
    per_movie = frame.groupby("movie")["label"].agg(["size", "sum"])
    room = val_fraction * np.array([(frame["label"] == 0).sum(), (frame["label"] == 1).sum()])
    taken: set[str] = set()
    for movie in np.random.default_rng(seed).permutation(per_movie.index.to_numpy()):
        size, positive = per_movie.loc[movie]
        need = np.array([size - positive, positive])
        if (need <= room).all():
            taken.add(movie)
            room -= need
    return taken


def split_train_val(train: pd.DataFrame, val_fraction: float, seed: int,
                    group_by: str = "movie") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/validation split; grouped by movie unless group_by is "none"."""
    if group_by == "movie":
        is_val = train["movie"].isin(movies_for_validation(train, val_fraction, seed))
        fit, val = train[~is_val], train[is_val]
    elif round(val_fraction * len(train)) < len(CLASSES):
        fit, val = train, train.iloc[:0]  # too few for a stratified split: reported below
    elif round((1 - val_fraction) * len(train)) < len(CLASSES):
        fit, val = train.iloc[:0], train
    else:
        fit, val = train_test_split(train, test_size=val_fraction, stratify=train["label"], random_state=seed)
    for name, frame in (("train", fit), ("validation", val)):
        check_both_classes(frame, name, "split.val_fraction", val_fraction)
    return fit.sort_values("id").reset_index(drop=True), val.sort_values("id").reset_index(drop=True)


def load_split(name: str) -> Split:
    path = prepared(name)
    if not path.exists():
        raise UserError(f"{path}: not found (run the split stage first: dvc repro split)")
    return Split.from_frame(name, pd.read_parquet(path))
