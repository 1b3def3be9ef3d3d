"""The report's numbers: every model's results read from its stages' outputs and compared on the same
texts — validation accuracy with a CI by group (IMDB: movie; none without groups), paired bootstrap CIs
and McNemar tests on test — and the champion (best validation accuracy) with its lead over the runner-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

from imdbclf import baselines, outputs, selection, significance
from imdbclf.atomic import read_json, read_parquet
from imdbclf.data import group_column
from imdbclf.ensemble import ENSEMBLE
from imdbclf.reporting.markdown import most_confidently_wrong
from imdbclf.settings.pipeline import ReportParams
from imdbclf.settings.selection import SelectionParams


def seed_columns(frame: pd.DataFrame, kind: str = "proba") -> pd.DataFrame:
    return frame[[c for c in frame.columns if c.startswith(f"{kind}_seed_")]]


def predicted(frame: pd.DataFrame) -> np.ndarray:
    """Seeds × texts: each seed's predicted class (two classes: P(positive) at least 0.5)."""
    if not seed_columns(frame, "pred").empty:
        return seed_columns(frame, "pred").to_numpy().T.astype(int)
    return (seed_columns(frame).to_numpy().T >= 0.5).astype(int)


def seed_correctness(frame: pd.DataFrame) -> np.ndarray:
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
                   read_json(outputs.eval_metrics(model)), read_parquet(outputs.predictions_file(model, "test")),
                   read_parquet(outputs.predictions_file(model, "val")), pd.read_csv(outputs.history(model)),
                   pd.read_csv(outputs.eval_dir(model) / "roc.csv"),
                   read_json(outputs.eval_dir(model) / "examples.json"))

    @classmethod
    def read_ensemble(cls) -> ModelOutputs | None:
        """The ensemble stage's records, in the same shape as a model's; None when it made no ensemble."""
        at = outputs.ensemble_file
        if not at("eval.json").exists() or (evaluation := read_json(at("eval.json"))).get("ensemble", "") is None:
            return None
        no_epochs = pd.DataFrame(columns=["epoch", "accuracy", "loss", "val_accuracy", "val_loss"])
        return cls(ENSEMBLE, read_json(at("tune.json")), read_json(at("retrain.json")), evaluation,
                   read_parquet(at("predictions.parquet")), read_parquet(at("val_predictions.parquet")), no_epochs,
                   pd.read_csv(at("roc.csv")), read_json(at("examples.json")))

    def row(self, val_accuracy: tuple[float, float, float]) -> dict[str, Any]:
        """The model's line in the report's table."""
        accuracy, low, high = val_accuracy
        e, r = self.evaluation, self.retrain
        return {"model": self.model, "config": self.tune["best"]["config"], "val_accuracy": accuracy,
                "val_ci_low": low, "val_ci_high": high, "test_accuracy": e["accuracy"],
                "test_accuracy_std": e["accuracy_std"], "seeds": len(e["seeds"]), "f1": e["f1"],
                "macro_f1": e.get("macro_f1", e["f1"]), "per_class": e.get("per_class", {}),
                "classes": e.get("classes", []), "confusion_matrix": e["confusion_matrix"],
                "roc_auc": e["roc_auc"], "loss": e["loss"], "metric": e.get("metric", "accuracy"),
                "val_score": e.get("val_score", accuracy), "vs_majority": e.get("vs_majority"),
                "trainable_params": r["trainable_params"],
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
    guesses: list[dict] = field(default_factory=list)  # the baselines' rows (`imdbclf.baselines`)
    metric: str = "accuracy"  # the selection metric, and why it is the one
    why: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"champion": self.champion["model"], "champion_lead": self.champion.get("lead"),
                "metric": self.metric, "metric_why": self.why, "models": self.rows, "baselines": self.guesses,
                "pairs": self.pairs, "examples": self.examples}

    def headline(self) -> dict[str, Any]:
        """What `dvc exp show` shows of the report (a DVC metric): the champion and its figures."""
        best = next(row for row in self.rows if row["model"] == self.champion["model"])
        return {"champion": self.champion["model"], "metric": self.metric,
                f"val_{self.metric}": round(best["val_score"], 4), "test_accuracy": round(best["test_accuracy"], 4),
                "test_macro_f1": round(best["macro_f1"], 4)}

    def not_beating(self) -> list[dict]:
        """The models whose lead over the majority guess is not above 0 with confidence."""
        return [row for row in self.rows if row.get("vs_majority") and not row["vs_majority"]["beats"]]

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


def champion_with_lead(rows: list[dict], val_correct: dict, groups: np.ndarray | None, r: ReportParams,
                       metric: str = "accuracy", val_predicted: dict | None = None,
                       val_labels: np.ndarray | None = None, k: int = 2) -> dict:
    """The best model on validation by the selection metric and its lead over the runner-up, with a CI
    resampling whole groups: accuracy as a mean of per-text correctness (every seed counts), another
    metric from the first seeds' confusion matrices (`significance.metric_lead`)."""
    ranked = sorted(rows, key=lambda row: row["val_accuracy" if metric == "accuracy" else "val_score"], reverse=True)
    champion = {"model": ranked[0]["model"], "metric": metric}
    if len(ranked) > 1:
        best, runner_up = ranked[0]["model"], ranked[1]["model"]
        if metric == "accuracy":
            diff, low, high = significance.bootstrap_ci(val_correct[best] - val_correct[runner_up],
                                                        r.bootstrap_samples, r.confidence, r.seed, clusters=groups)
        else:
            diff, low, high = significance.metric_lead(val_labels, val_predicted[best], val_predicted[runner_up], k,
                                                       baselines.lead_metric(metric), r.bootstrap_samples,
                                                       r.confidence, r.seed, groups)
        champion["lead"] = {"runner_up": runner_up, "diff": diff, "ci_low": low, "ci_high": high,
                            "level": int(round(r.confidence * 100)), "within_uncertainty": low <= 0}
    return champion


def guess_rows(test: pd.DataFrame, train_counts: np.ndarray, classes: list[str], seed: int) -> list[dict]:
    """The baselines' lines in the report's table: test figures of each guess (`imdbclf.baselines`)."""
    labels, k = test["label"].to_numpy(), len(train_counts)
    rows = []
    for name, (guessed, proba) in baselines.guesses(len(test), train_counts, seed).items():
        title = (f"majority guess (always '{classes[baselines.majority(train_counts)]}')" if name == "majority"
                 else "class-prior guess (random draws in the training shares)")
        rows.append({"model": title, "guess": name,
                     "test_accuracy": selection.score("accuracy", labels, proba, guessed),
                     "macro_f1": selection.score("macro_f1", labels, proba, guessed),
                     "balanced_accuracy": selection.score("balanced_accuracy", labels, proba, guessed),
                     "loss": float(log_loss(labels, proba, labels=list(range(k)))), "roc_auc": 0.5})
    return rows


def compare(models: list[ModelOutputs], test: pd.DataFrame, val: pd.DataFrame, r: ReportParams,
            train_counts: np.ndarray, rule: SelectionParams) -> Comparison:
    column = group_column(val)  # the CIs' clusters (IMDB: movies); each text its own without groups
    groups = (val[column] if column else val["id"]).to_numpy()
    test_correct = {m.model: seed_correctness(m.test_predictions) for m in models}
    val_correct = {m.model: seed_correctness(m.val_predictions) for m in models}
    rows = [m.row(significance.bootstrap_ci(val_correct[m.model], r.bootstrap_samples, r.confidence, r.seed,
                                            clusters=groups)) for m in models]
    pairs = significance.pairwise(test_correct, r.bootstrap_samples, r.confidence, r.seed)
    worst = {m.model: most_confidently_wrong(test, seed_columns(m.test_predictions).iloc[:, 0].to_numpy(),
                                             predicted(m.test_predictions)[0], r.worst_examples,
                                             binary=seed_columns(m.test_predictions, "pred").empty) for m in models}
    examples = [{"text": e["text"], **{m.model: {k: v for k, v in m.examples[i].items() if k != "text"}
                                       for m in models}}
                for i, e in enumerate(models[0].examples)]  # per model: label, its probability, probabilities
    classes = rows[0]["classes"] or ["negative", "positive"]
    counts = np.asarray(train_counts)
    metric = rows[0]["metric"]
    val_predicted = {m.model: predicted(m.val_predictions)[0] for m in models}
    champion = champion_with_lead(rows, val_correct, groups, r, metric, val_predicted, val["label"].to_numpy(),
                                  len(classes))
    return Comparison(rows, pairs, champion, examples, worst, models, column or "text",
                      guess_rows(test, counts, classes, r.seed), metric, selection.why(rule, counts))
