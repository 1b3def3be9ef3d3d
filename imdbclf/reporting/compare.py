"""The report's numbers: every model's results read from its stages' outputs and compared on the same
texts — validation accuracy with a CI by group (IMDB: movie; none without groups), paired bootstrap CIs
and McNemar tests on test — and the champion (best validation accuracy) with its lead over the runner-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from imdbclf import outputs, significance
from imdbclf.atomic import read_json, read_parquet
from imdbclf.data import group_column
from imdbclf.params import ReportParams
from imdbclf.reporting.markdown import most_confidently_wrong


def seed_columns(frame: pd.DataFrame, kind: str = "proba") -> pd.DataFrame:
    return frame[[c for c in frame.columns if c.startswith(f"{kind}_seed_")]]


def predicted(frame: pd.DataFrame) -> np.ndarray:
    """Seeds × texts: each seed's predicted class (two classes: P(positive) at least 0.5)."""
    if not seed_columns(frame, "pred").empty:
        return seed_columns(frame, "pred").to_numpy().T.astype(int)
    return (seed_columns(frame).to_numpy().T >= 0.5).astype(int)


def correctness(frame: pd.DataFrame) -> np.ndarray:
    """Per text, the fraction of the model's seeds that classify it right."""
    return significance.correctness(frame["label"].to_numpy(), predicted(frame))


@dataclass
class ModelOutputs:
    """What the tune, retrain and evaluate stages of one model wrote."""

    model: str
    tune: dict
    retrain: dict
    evaluation: dict
    test_predictions: pd.DataFrame
    val_predictions: pd.DataFrame
    history: pd.DataFrame
    roc: pd.DataFrame
    examples: list[dict]

    @classmethod
    def read(cls, model: str) -> ModelOutputs:
        return cls(model, read_json(outputs.tune_metrics(model)), read_json(outputs.retrain_metrics(model)),
                   read_json(outputs.eval_metrics(model)), read_parquet(outputs.predictions(model, "test")),
                   read_parquet(outputs.predictions(model, "val")), pd.read_csv(outputs.history(model)),
                   pd.read_csv(outputs.eval_dir(model) / "roc.csv"),
                   read_json(outputs.eval_dir(model) / "examples.json"))

    def row(self, val_accuracy: tuple[float, float, float]) -> dict[str, Any]:
        """The model's line in the report's table."""
        accuracy, low, high = val_accuracy
        e, r = self.evaluation, self.retrain
        return {"model": self.model, "config": self.tune["best"]["config"], "val_accuracy": accuracy,
                "val_ci_low": low, "val_ci_high": high, "test_accuracy": e["accuracy"],
                "test_accuracy_std": e["accuracy_std"], "seeds": len(e["seeds"]), "f1": e["f1"],
                "macro_f1": e.get("macro_f1", e["f1"]), "per_class": e.get("per_class", {}),
                "classes": e.get("classes", []), "confusion_matrix": e["confusion_matrix"],
                "roc_auc": e["roc_auc"], "trainable_params": r["trainable_params"],
                "train_seconds": r["train_seconds"], "texts_per_second": e["texts_per_second"],
                "registered_model": r.get("registered_model"), "model_version": r.get("model_version")}


@dataclass
class Comparison:
    """Everything the report says, computed before anything is written."""

    rows: list[dict]
    pairs: list[dict]
    champion: dict
    examples: list[dict]
    worst: dict[str, pd.DataFrame]
    models: list[ModelOutputs] = field(repr=False)
    grouped_by: str = "movie"  # what the validation CIs resample: the group column, or "text"

    def as_json(self) -> dict[str, Any]:
        return {"champion": self.champion["model"], "champion_lead": self.champion.get("lead"),
                "models": self.rows, "pairs": self.pairs, "examples": self.examples}

    def lines(self) -> list[str]:
        """The champion's lead and the paired tests, as the stage prints them."""
        shown = []
        if lead := self.champion.get("lead"):
            shown.append(f"  lead over {lead['runner_up']} on validation {lead['diff']:+.4f} "
                         f"[{lead['ci_low']:+.4f}, {lead['ci_high']:+.4f}]"
                         + (" — within the uncertainty" if lead["within_uncertainty"] else ""))
        for pair in self.pairs:
            shown.append(f"  {pair['a']} − {pair['b']}: {pair['accuracy_diff']:+.4f} "
                         f"[{pair['ci_low']:+.4f}, {pair['ci_high']:+.4f}], McNemar p={pair['mcnemar_p']:.3g} "
                         f"(Holm {pair['mcnemar_p_holm']:.3g})")
        return shown


def champion_with_lead(rows: list[dict], val_correct: dict, groups: np.ndarray | None, r: ReportParams) -> dict:
    """The best model on validation and its lead over the runner-up, with a CI resampling whole groups."""
    ranked = sorted(rows, key=lambda row: row["val_accuracy"], reverse=True)
    champion = {"model": ranked[0]["model"]}
    if len(ranked) > 1:
        best, runner_up = ranked[0]["model"], ranked[1]["model"]
        diff, low, high = significance.bootstrap_ci(val_correct[best] - val_correct[runner_up], r.bootstrap_samples,
                                                    r.confidence, r.seed, clusters=groups)
        champion["lead"] = {"runner_up": runner_up, "diff": diff, "ci_low": low, "ci_high": high,
                            "level": int(round(r.confidence * 100)), "within_uncertainty": low <= 0}
    return champion


def compare(models: list[ModelOutputs], test: pd.DataFrame, val: pd.DataFrame, r: ReportParams) -> Comparison:
    column = group_column(val)  # the CIs' clusters (IMDB: movies); each text its own without groups
    groups = (val[column] if column else val["id"]).to_numpy()
    test_correct = {m.model: correctness(m.test_predictions) for m in models}
    val_correct = {m.model: correctness(m.val_predictions) for m in models}
    rows = [m.row(significance.bootstrap_ci(val_correct[m.model], r.bootstrap_samples, r.confidence, r.seed,
                                            clusters=groups)) for m in models]
    pairs = significance.pairwise(test_correct, r.bootstrap_samples, r.confidence, r.seed)
    worst = {m.model: most_confidently_wrong(test, seed_columns(m.test_predictions).iloc[:, 0].to_numpy(),
                                             predicted(m.test_predictions)[0], r.worst_examples,
                                             binary=seed_columns(m.test_predictions, "pred").empty) for m in models}
    examples = [{"text": e["text"], **{m.model: {k: v for k, v in m.examples[i].items() if k != "text"}
                                       for m in models}}
                for i, e in enumerate(models[0].examples)]  # per model: label, its probability, probabilities
    return Comparison(rows, pairs, champion_with_lead(rows, val_correct, groups, r), examples, worst, models,
                      column or "text")
