"""ensemble: the evaluated models' class probabilities combined, with weights chosen on validation alone
(greedy selection with replacement, `imdbclf.ensemble`), then scored on test from the members' saved
predictions: the same records as a model's tune, retrain and evaluate stages (metrics/ensemble/), so the
report compares it, with the same CIs and paired tests, and may make it the champion. It is saved
(models/ensemble: the members' saved models and the weights), registered as `<prefix>ensemble` and
checked: the saved ensemble, loaded as the served model loads it, must give the combined predictions.

A member without predictions (its evaluate stage failed or did not run) is left out with a line saying
so; with fewer than two members, or `ensemble.enabled: false`, the stage records that there is none."""

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from imdbclf import (
    atomic,
    baselines,
    data,
    ensemble,
    evaluation,
    integrity,
    model_registry,
    outputs,
    params,
    selection,
    serving,
    tracking,
)
from imdbclf.families import predicted_labels
from imdbclf.ops.stage import stage

CHECKED_TEXTS = 32  # test texts the loaded ensemble scores again, against the combined saved predictions


def members_with_predictions(p: params.Params, k: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    names = p.models if p.ensemble.members == "all" else p.ensemble.members
    found = {}
    for name in names:
        seed = p.model(name).retrain.seeds[0]
        paths = (outputs.predictions_file(name, "val"), outputs.predictions_file(name, "test"),
                 outputs.seed_dir(name, seed))
        if not all(path.exists() for path in paths):
            print(f"ensemble: {name} left out: no saved model or predictions (did its evaluate stage run?)")
            continue
        found[name] = tuple(ensemble.probabilities(atomic.read_parquet(path), k, seed) for path in paths[:2])
    return found


def none_made(why: str) -> str:
    """Every output, saying there is no ensemble and why (DVC wants them all; the report skips them)."""
    shutil.rmtree(outputs.ENSEMBLE_MODEL, ignore_errors=True)
    outputs.ENSEMBLE_MODEL.mkdir(parents=True)
    (outputs.ENSEMBLE_MODEL / "NONE").write_text(why + "\n")
    for name in ("tune.json", "retrain.json", "eval.json", "scores.json", "examples.json"):
        atomic.write_json(outputs.ensemble_file(name), {"ensemble": None, "why": why})
    atomic.write_csv(pd.DataFrame(columns=["fpr", "tpr", "threshold"]), outputs.ensemble_file("roc.csv"))
    for name in ("predictions.parquet", "val_predictions.parquet"):
        atomic.write_parquet(pd.DataFrame({"label": pd.Series([], dtype="int64")}), outputs.ensemble_file(name))
    print(f"ensemble: none ({why})")
    return f"no ensemble: {why}"


def chosen_weights(p: params.Params, members: dict, val: data.Split, metric: str) -> tuple[dict, list, np.ndarray]:
    """The weights, the greedy search's path round by round (the tuning figure's trials), and validation's
    predictions judged out of fold (the path is in-sample: the weights were chosen there)."""
    val_probas = {m: v[0] for m, v in members.items()}
    path = []
    for weights in ensemble.greedy_path(val_probas, val.labels, metric, p.ensemble.rounds):
        combined = ensemble.combine(val_probas, weights)
        scores = evaluation.classification_metrics(val.labels, combined, val.classes)
        path.append({"config": weights, "val_accuracy": scores["accuracy"], "val_loss": scores["loss"],
                     "val_score": selection.score(metric, val.labels, combined)})
    val_proba = ensemble.out_of_fold(val_probas, val.labels, val.groups, metric, p.ensemble.rounds,
                                     p.ensemble.folds, p.report.seed)
    return weights, path, val_proba


def saved_and_checked(p: params.Params, weights: dict, test: data.Split, test_proba: np.ndarray) -> ensemble.Ensemble:
    """The ensemble saved with its members as DVC recorded them, loaded back as the served model loads it,
    and checked against the combined saved predictions."""
    kept = [m for m, w in weights.items() if w > 0]
    member_dirs = {m: outputs.seed_dir(m, p.model(m).retrain.seeds[0]) for m in kept}
    for where in member_dirs.values():
        expected = integrity.dvc_digests(where, Path.cwd())
        if expected is not None:
            integrity.verify(where, expected, f"{integrity.LOCK_FILE} (through DVC's cache)")
    ensemble.save(outputs.ENSEMBLE_MODEL, member_dirs, weights, test.classes, {m: p.model(m).family for m in kept})
    saved = ensemble.Ensemble.load(outputs.ENSEMBLE_MODEL)
    again = saved.predict_proba(list(test.texts[:CHECKED_TEXTS]), p.evaluate.batch_size)
    if (gap := float(np.abs(again - test_proba[:CHECKED_TEXTS]).max())) > 1e-3:
        raise RuntimeError(f"the saved ensemble scores test texts {gap:.4f} away from its members' predictions")
    return saved


def evaluation_record(p: params.Params, weights: dict, test: data.Split, test_proba: np.ndarray, val: data.Split,
                      val_proba: np.ndarray, metric: str, counts: np.ndarray, in_sample: float) -> dict:
    """What evaluate@<model> writes of a model (metrics/eval/<model>.json), for the ensemble."""
    kept = [m for m, w in weights.items() if w > 0]
    test_scores = evaluation.classification_metrics(test.labels, test_proba, test.classes)
    val_scores = evaluation.classification_metrics(val.labels, val_proba, val.classes)
    member_evals = {m: atomic.read_json(outputs.eval_metrics(m)) for m in kept}
    speed = 1 / sum(1 / member_evals[m]["texts_per_second"] for m in kept)  # members score one after another
    seed = {"seed": 0, **test_scores, "texts_per_second": speed, "val_accuracy": val_scores["accuracy"],
            "val_loss": val_scores["loss"]}
    lead = baselines.lead_over_majority(test.labels, predicted_labels(test_proba), counts, metric, p.report,
                                        test.groups)
    return {**evaluation.summarize_seeds([seed], evaluation.SUMMARIZED), "classes": list(test.classes),
            "confusion_matrix": test_scores["confusion_matrix"], "per_class": test_scores["per_class"],
            "seeds": [seed], "test_texts": len(test), "val_texts": len(val), "metric": metric,
            "val_score": selection.score(metric, val.labels, val_proba), "vs_majority": lead, "weights": weights,
            "val_out_of_fold": p.ensemble.folds, "val_in_sample": in_sample}


def retrain_record(weights: dict, search_s: float, registered: str, version: str | int) -> dict:
    """What retrain@<model> writes of a model: the members' parameters and training time, the search's."""
    kept = [m for m, w in weights.items() if w > 0]
    member_retrains = {m: atomic.read_json(outputs.retrain_metrics(m)) for m in kept}
    return {"trainable_params": sum(member_retrains[m]["trainable_params"] for m in kept),
            "train_seconds": search_s + sum(member_retrains[m]["train_seconds"] for m in kept),
            "seeds": [{"seed": 0, "best_epoch": 0}], "registered_model": registered, "model_version": version,
            "members": kept}


def write_records(tune: dict, retrain: dict, result: dict, examples: list, test: data.Split, test_proba: np.ndarray,
                  val: data.Split, val_proba: np.ndarray) -> None:
    atomic.write_json(outputs.ensemble_file("tune.json"), tune)
    atomic.write_json(outputs.ensemble_file("retrain.json"), retrain)
    atomic.write_json(outputs.ensemble_file("eval.json"), result)
    atomic.write_json(outputs.ensemble_file("scores.json"), evaluation.headline_figures(result))
    atomic.write_csv(pd.DataFrame(evaluation.roc_points(test.labels, test_proba)), outputs.ensemble_file("roc.csv"))
    atomic.write_json(outputs.ensemble_file("examples.json"), examples)
    atomic.write_parquet(evaluation.predictions_table(test, {0: test_proba}),
                         outputs.ensemble_file("predictions.parquet"))
    atomic.write_parquet(evaluation.predictions_table(val, {0: val_proba}),
                         outputs.ensemble_file("val_predictions.parquet"))


@stage("ensemble")
def main() -> str:
    p = params.load()
    if not p.ensemble.enabled:
        return none_made("ensemble.enabled is false")
    test, val = data.load_split("test"), data.load_split("val")
    counts = data.read_train_counts()
    metric = selection.metric(p.selection, counts)
    members = members_with_predictions(p, len(test.classes))
    if len(members) < 2:
        return none_made(f"{len(members)} evaluated member(s); an ensemble needs two")
    registered = f"{p.tracking.registered_model_prefix}ensemble"
    with tracking.stage_run(p, "ensemble", {"ensemble": p.ensemble.model_dump(), "members": list(members)}):
        started = time.perf_counter()
        weights, path, val_proba = chosen_weights(p, members, val, metric)
        search_s = time.perf_counter() - started
        test_proba = ensemble.combine({m: v[1] for m, v in members.items()}, weights)
        saved = saved_and_checked(p, weights, test, test_proba)
        kept = [m for m, w in weights.items() if w > 0]
        texts = [e["text"] for e in atomic.read_json(outputs.eval_dir(kept[0]) / "examples.json")]
        examples = serving.predictions(texts, serving.predictions_frame(saved.predict_proba(texts), test.classes))
        version = model_registry.register(outputs.ENSEMBLE_MODEL, registered,
                                          {"dvc.stage": "ensemble", "weights": str(weights)})
        result = evaluation_record(p, weights, test, test_proba, val, val_proba, metric, counts,
                                   path[-1]["val_accuracy"])
        write_records({"best": {"config": weights}, "trials": path, "metric": metric},
                      retrain_record(weights, search_s, registered, version), result, examples,
                      test, test_proba, val, val_proba)
        tracking.log_params({f"weight_{m}": w for m, w in weights.items()})
        tracking.log_metrics({"val_accuracy": result["val_accuracy"], "test_accuracy": result["accuracy"],
                              f"val_{metric}": result["val_score"]})
        if not result["vs_majority"]["beats"]:
            print(baselines.warning("ensemble", result["vs_majority"], test.classes, counts))
    weighted = ", ".join(f"{m} {w:.2f}" for m, w in weights.items())
    return (f"weights {weighted}; val {metric} {result['val_score']:.4f}, test accuracy {result['accuracy']:.4f}; "
            f"registered {registered} version {version}")


if __name__ == "__main__":
    main()
