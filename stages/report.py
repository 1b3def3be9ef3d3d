"""report: compare every evaluated model — table, paired bootstrap CIs and McNemar tests on the
same test reviews, figures, example reviews and each model's most confident mistakes — and name
the champion (best validation accuracy) in the MLflow model registry."""

import pandas as pd

from imdbclf import params, paths, reporting, tracking
from imdbclf.errors import exit_on_user_error


@exit_on_user_error
def main() -> None:
    p = params.load()
    r = p.report
    test = pd.read_parquet(paths.prepared("test"))
    rows, predictions, histories, rocs, tunes, worst, scored = [], {}, {}, {}, {}, {}, {}
    for model in p.models:
        tune = paths.read_json(paths.tune_metrics(model))
        retrain = paths.read_json(paths.retrain_metrics(model))
        evaluation = paths.read_json(paths.eval_metrics(model))
        frame = pd.read_parquet(paths.eval_dir(model) / "predictions.parquet")
        proba = frame[f"proba_seed_{retrain['seeds'][0]['seed']}"].to_numpy()
        rows.append({"model": model, "config": tune["best"]["config"], "val_accuracy": retrain["val_accuracy"],
                     "test_accuracy": evaluation["accuracy"], "test_accuracy_std": evaluation["accuracy_std"],
                     "seeds": len(evaluation["seeds"]), "f1": evaluation["f1"], "roc_auc": evaluation["roc_auc"],
                     "trainable_params": retrain["trainable_params"], "train_seconds": retrain["train_seconds"],
                     "reviews_per_second": evaluation["reviews_per_second"],
                     "registered_model": retrain.get("registered_model"),
                     "model_version": retrain.get("model_version")})
        predictions[model] = (proba >= 0.5).astype(int)
        histories[model] = pd.read_csv(paths.history(model))
        rocs[model] = pd.read_csv(paths.eval_dir(model) / "roc.csv")
        tunes[model] = tune
        worst[model] = reporting.most_confidently_wrong(test, proba, r.worst_examples)
        scored[model] = paths.read_json(paths.eval_dir(model) / "examples.json")

    labels = test["label"].to_numpy()
    pairs = reporting.pairwise(labels, predictions, r.bootstrap_samples, r.confidence, r.seed)
    champion = max(rows, key=lambda row: row["val_accuracy"])["model"]
    figures = {"Train vs validation accuracy and loss per epoch": "figures/history.png",
               "Tuning: validation accuracy per hyperparameter value": "figures/tuning.png",
               "ROC curves on the test set": "figures/roc.png"}
    reporting.plot_histories(histories, paths.REPORT_FIGURES / "history.png")
    reporting.plot_tuning(tunes, paths.REPORT_FIGURES / "tuning.png")
    reporting.plot_roc(rocs, paths.REPORT_FIGURES / "roc.png")
    examples = [{"text": e["text"], **{m: scored[m][i]["probability"] for m in p.models}}
                for i, e in enumerate(scored[p.models[0]])]
    paths.REPORT_MD.parent.mkdir(parents=True, exist_ok=True)
    paths.REPORT_MD.write_text(reporting.markdown(rows, pairs, r.confidence, examples, worst, champion, figures))
    summary = {"champion": champion, "models": rows, "pairs": pairs, "examples": examples}
    paths.write_json(paths.REPORT_JSON, summary)

    with tracking.stage_run(p, "report", {"report": r.model_dump(), "models": p.models}):
        tracking.log_metrics({f"{row['model']}_test_accuracy": row["test_accuracy"] for row in rows})
        tracking.log_artifact(paths.REPORT_MD)
        tracking.log_artifact(paths.REPORT_JSON)
        for figure in sorted(paths.REPORT_FIGURES.glob("*.png")):
            tracking.log_artifact(figure, "figures")
        best = next(row for row in rows if row["model"] == champion)
        if best["registered_model"] and best["model_version"]:
            tracking.set_champion(best["registered_model"], best["model_version"], p.tracking.registered_model_prefix)
    print(f"report: {paths.REPORT_MD} written; champion {champion}")
    for pair in pairs:
        print(f"  {pair['a']} − {pair['b']}: {pair['accuracy_diff']:+.4f} "
              f"[{pair['ci_low']:+.4f}, {pair['ci_high']:+.4f}], McNemar p={pair['mcnemar_p']:.3g}")


if __name__ == "__main__":
    main()
