"""An ensemble of the models the pipeline already trained: their class probabilities combined with weights
chosen on validation alone, by greedy forward selection with replacement (Caruana et al., 2004; what
AutoGluon's weighted ensemble does): each round adds one more share of the member that most improves the
selection metric of the combination (ties: the lower log loss, then the earlier member).

The combination is a weighted mean of the members' log-probabilities, renormalised (for two classes, a
weighted mean of their logits): a confident member counts for more than a hesitant one, and any number of
classes works the same.

Saved like a family (`family.json`: "ensemble", the weights, the classes, the members' families;
`members/<name>/`: each member's saved model), it is registered, checked, served and predicted with like any
model: one request, every member's probabilities, the weighted answer."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

from imdbclf import selection
from imdbclf.families import registry
from imdbclf.families.base import FAMILY_FILE, Family
from imdbclf.families.registry import ENSEMBLE, MEMBERS_DIR  # its name as a model and as a saved family

FLOOR = 1e-7  # a probability of 0 would make its log -inf: clipped to this


def combine(probas: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The weighted mean of the members' log-probabilities, renormalised to probabilities (n, K)."""
    used = {m: w for m, w in weights.items() if w > 0}
    total = sum(used.values())
    logits = sum(w / total * np.log(np.clip(np.asarray(probas[m], dtype=np.float64), FLOOR, 1.0))
                 for m, w in used.items())
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def greedy_path(probas: Mapping[str, np.ndarray], labels: np.ndarray, metric: str,
                rounds: int) -> list[dict[str, float]]:
    """The weights after each round (each member's share of the picks so far), chosen on these (validation)
    probabilities: the last are the ensemble's."""
    names = list(probas)
    k = next(iter(probas.values())).shape[1]
    picks, path = dict.fromkeys(names, 0), []
    for done in range(1, rounds + 1):
        best_key, best = None, names[0]
        for name in names:
            combined = combine(probas, {**picks, name: picks[name] + 1})
            key = (selection.score(metric, labels, combined), -log_loss(labels, combined, labels=list(range(k))))
            if best_key is None or key > best_key:
                best_key, best = key, name
        picks[best] += 1
        path.append({name: count / done for name, count in picks.items()})
    return path


def out_of_fold(probas: Mapping[str, np.ndarray], labels: np.ndarray, groups: np.ndarray | None, metric: str,
                rounds: int, folds: int, seed: int) -> np.ndarray:
    """Validation probabilities of the ensemble that no text's own weights saw: the groups (IMDB: movies)
    dealt into `folds`, each fold combined with the weights chosen on the others. What the report judges
    the ensemble by on validation: its weights were chosen there, so scoring them on the same texts
    would flatter it against models that were only tuned there."""
    n = len(labels)
    if groups is None:
        groups = np.full(n, None, dtype=object)
    # a text without a group (a table split with `group_by: none`) is a group of its own
    keys = np.array([f"\0text {i}" if pd.isna(g) else str(g) for i, g in enumerate(groups)])
    unique = np.unique(keys)
    fold_of = dict(zip(unique, np.random.default_rng(seed).permutation(len(unique)) % folds))
    fold = np.array([fold_of[key] for key in keys])
    combined = np.zeros_like(next(iter(probas.values())), dtype=np.float64)
    for f in range(folds):
        held, rest = fold == f, fold != f
        if not held.any():
            continue
        weights = greedy_path({m: p[rest] for m, p in probas.items()}, labels[rest], metric, rounds)[-1]
        combined[held] = combine({m: p[held] for m, p in probas.items()}, weights)
    return combined


def probabilities(frame: pd.DataFrame, k: int, seed: int) -> np.ndarray:
    """A seed's (n, K) probabilities from an evaluate predictions table (`evaluation.predictions_table`)."""
    if k == 2:
        positive = frame[f"proba_seed_{seed}"].to_numpy(dtype=np.float64)
        return np.column_stack([1 - positive, positive])
    return frame[[f"class{c}_seed_{seed}" for c in range(k)]].to_numpy(dtype=np.float64)


class Ensemble:
    """The saved ensemble: its members' families loaded, their probabilities combined with the weights."""

    name = ENSEMBLE

    def __init__(self, members: Mapping[str, Family], weights: Mapping[str, float], classes: Sequence[str]):
        self.members, self.weights, self.classes = dict(members), dict(weights), tuple(classes)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        return combine({m: f.predict_proba(texts, batch_size) for m, f in self.members.items()}, self.weights)

    def trainable_params(self) -> int:
        return sum(f.trainable_params() for f in self.members.values())

    @classmethod
    def load(cls, path: Path) -> Ensemble:
        names = registry.ensemble_members(path)  # checked: what it declares is what loads
        meta = json.loads((Path(path) / FAMILY_FILE).read_text())
        members = {m: registry.load_family(Path(path) / MEMBERS_DIR / m) for m in names}
        return cls(members, {m: float(meta["weights"][m]) for m in names}, meta["classes"])


def save(path: Path, member_dirs: Mapping[str, Path], weights: Mapping[str, float], classes: Sequence[str],
         member_families: Mapping[str, str]) -> None:
    """The members' saved models (weight above 0) and the weights, into `path`: written beside it, family.json
    last, then renamed into place, so a killed save leaves the old ensemble or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    kept = {m: w for m, w in weights.items() if w > 0}
    try:
        for member in kept:
            shutil.copytree(member_dirs[member], tmp / MEMBERS_DIR / member)
        meta = {"family": ENSEMBLE, "weights": kept, "classes": list(classes),
                "member_families": {m: member_families[m] for m in kept}}
        (tmp / FAMILY_FILE).write_text(json.dumps(meta, indent=2))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f"{tmp.name}-old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
