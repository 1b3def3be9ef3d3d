"""What a model sees of the data (`Split`), and how it is split: stratified by label, grouped by the
source's group (the movie, for IMDB) so that validation, like the official test set, holds groups never
seen in training. The class names (sorted, as the data has them) travel with every split."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from imdbclf.errors import UserError
from imdbclf.outputs import PREPARED, prepared_file

BINARY = ("negative", "positive")  # IMDB's sentiment, and the classes of a split made without names
GROUP_COLUMNS = ("movie", "group")  # the aclImdb source's groups are movies; a table's, its group column
META = "meta.json"  # data/prepared/meta.json: the class names and the group column


def group_column(frame: pd.DataFrame) -> str | None:
    return next((c for c in GROUP_COLUMNS if c in frame.columns and frame[c].notna().all()), None)


def class_names(labels: pd.Series, key: str) -> tuple[str, ...]:
    """The classes, sorted (numbers by value: ratings 1 < 2 < 10), as names."""
    values = sorted(pd.unique(labels), key=lambda v: (isinstance(v, str), v))
    if len(values) < 2:
        raise UserError(f"{key}: the labels have one class ({values[0] if values else 'none'!s}): a classifier "
                        "needs at least two")
    return tuple(str(v) for v in values)


def encode_labels(frame: pd.DataFrame, classes: tuple[str, ...], where: str) -> pd.DataFrame:
    """The label column as class indices into `classes`."""
    names = frame["label"].astype(str)
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise UserError(f"{where}: label {unknown[0]!r} does not occur in the training data (its classes: "
                        f"{', '.join(classes)})")
    index = {name: i for i, name in enumerate(classes)}
    return frame.assign(label=names.map(index).astype(np.int64))


def stratified_indices(labels: np.ndarray, n: int | None, seed: int, key: str = "sample size") -> np.ndarray:
    """Sorted indices of a class-balanced subsample of size n (all indices when n is None);
    `key` is the params key that set n, for the error a too small n gets."""
    everything = np.arange(len(labels))
    if n is None or n >= len(labels):
        return everything
    classes = len(np.unique(labels))
    if n < classes:
        raise UserError(f"params.yaml: {key}: {n} is too small: a stratified sample needs at least one "
                        f"text of each of the {classes} classes")
    sample, _ = train_test_split(everything, train_size=n, stratify=labels, random_state=seed)
    return np.sort(sample)


def stratified_sample(frame: pd.DataFrame, n: int | None, seed: int, key: str = "sample size") -> pd.DataFrame:
    return frame.iloc[stratified_indices(frame["label"].to_numpy(), n, seed, key)].reset_index(drop=True)


def check_every_class(frame: pd.DataFrame, split: str, key: str, value: object,
                      classes: tuple[str, ...] = BINARY) -> None:
    """Training, early stopping and every metric need texts of every class in each split."""
    counts = [int((frame["label"] == label).sum()) for label in range(len(classes))]
    if min(counts) == 0:
        if len(classes) == 2:
            found = ", ".join(f"{n} {name}" for n, name in zip(counts, ("neg", "pos") if classes == BINARY
                                                               else classes))
            raise UserError(f"params.yaml: {key}: {value} leaves the {split} split with {found} reviews: "
                            "it needs both classes (change the setting or use more data)")
        missing = classes[counts.index(0)]
        raise UserError(f"params.yaml: {key}: {value} leaves the {split} split without class {missing!r}: "
                        "each split needs every class (too few examples of it; change the setting or use more data)")


@dataclass(frozen=True)
class Split:
    """Texts and their labels (indices into `classes`), as the families consume them."""

    name: str
    texts: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None = None
    groups: np.ndarray | None = None  # what must not straddle splits (IMDB: the movie)
    classes: tuple[str, ...] = BINARY
    group_name: str = "movie"

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_frame(cls, name: str, frame: pd.DataFrame, classes: tuple[str, ...] = BINARY) -> Split:
        column = next((c for c in GROUP_COLUMNS if c in frame), None)
        groups = frame[column].to_numpy(dtype=object) if column else None
        return cls(name, frame["text"].to_numpy(dtype=object), frame["label"].to_numpy(dtype=np.int64),
                   frame["id"].to_numpy(dtype=object), groups, tuple(classes), column or "group")

    def class_counts(self) -> np.ndarray:
        return class_counts(self.labels, len(self.classes))

    def subsample(self, n: int | None, seed: int, key: str = "sample size") -> Split:
        keep = stratified_indices(self.labels, n, seed, key)
        ids = None if self.ids is None else self.ids[keep]
        groups = None if self.groups is None else self.groups[keep]
        return Split(self.name, self.texts[keep], self.labels[keep], ids, groups, self.classes, self.group_name)


def groups_for_validation(frame: pd.DataFrame, column: str, fraction: float, seed: int) -> set[str]:
    """Whole groups, in a seeded random order, taken while they fit into `fraction` of each class: a
    split stratified by label and grouped, so no group has texts on both sides."""
    per_group = pd.crosstab(frame[column], frame["label"])
    room = fraction * frame["label"].value_counts().reindex(per_group.columns).to_numpy()
    taken: set[str] = set()
    for group in np.random.default_rng(seed).permutation(per_group.index.to_numpy()):
        need = per_group.loc[group].to_numpy()
        if (need <= room).all():
            taken.add(group)
            room -= need
    return taken


def split_off(frame: pd.DataFrame, fraction: float, seed: int, grouped: bool, key: str,
              classes: tuple[str, ...] = BINARY, names: tuple[str, str] = ("train", "validation"),
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified split of `frame` with `fraction` of it on the second side; grouped by the group
    column when `grouped` (and the frame has one)."""
    column = group_column(frame) if grouped else None
    if grouped and column is None:
        raise UserError("params.yaml: split.group_by: the data have no group column to split by (set "
                        "data.group_column for a table, or split.group_by: none)")
    if column:
        second = frame[column].isin(groups_for_validation(frame, column, fraction, seed))
        if not second.any() or second.all():
            raise UserError(f"data: group column '{column}': its {frame[column].nunique()} group(s) all land in the "
                            f"{names[0] if not second.any() else names[1]} split at {key} {fraction}: the grouped "
                            "split needs more, smaller groups (or split.group_by: none)")
        first, other = frame[~second], frame[second]
    elif round(fraction * len(frame)) < len(classes):
        first, other = frame, frame.iloc[:0]  # too few for a stratified split: reported below
    elif round((1 - fraction) * len(frame)) < len(classes):
        first, other = frame.iloc[:0], frame
    else:
        counts = frame["label"].value_counts()
        if counts.min() < 2:
            rare = classes[int(counts.idxmin())]
            raise UserError(f"data: class {rare!r} has {counts.min()} example: too few for a stratified split "
                            f"({key} {fraction}): each split needs one of every class")
        first, other = train_test_split(frame, test_size=fraction, stratify=frame["label"], random_state=seed)
    for name, part in zip(names, (first, other)):
        check_every_class(part, name, key, fraction, classes)
    return first.sort_values("id").reset_index(drop=True), other.sort_values("id").reset_index(drop=True)


def split_train_val(train: pd.DataFrame, val_fraction: float, seed: int, group_by: str = "movie",
                    classes: tuple[str, ...] = BINARY) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/validation split; grouped by the source's group unless group_by is "none"."""
    return split_off(train, val_fraction, seed, group_by != "none", "split.val_fraction", classes)


def read_classes() -> tuple[str, ...]:
    """The class names the split stage recorded (IMDB's two before it recorded them)."""
    path = PREPARED / META
    return tuple(json.loads(path.read_text())["classes"]) if path.exists() else BINARY


def class_counts(labels, k: int) -> np.ndarray:
    """Texts per class index, zeros for a class without texts."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=k)


def read_train_counts() -> np.ndarray:
    """Texts per class in the training split, as the split stage recorded them: what the baselines guess
    from and the `auto` selection rule judges balance by."""
    path = PREPARED / META
    counts = json.loads(path.read_text()).get("train_counts") if path.exists() else None
    if counts is None:
        raise UserError(f"{path}: no train_counts (written by an older split stage): run dvc repro split")
    return np.asarray(counts, dtype=np.int64)


def load_split(name: str) -> Split:
    path = prepared_file(name)
    if not path.exists():
        raise UserError(f"{path}: not found (run the split stage first: dvc repro split)")
    return Split.from_frame(name, pd.read_parquet(path), read_classes())
