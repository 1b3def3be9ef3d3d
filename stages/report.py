"""report: compare every evaluated model — table, validation accuracy with a CI by movie, paired
bootstrap CIs and McNemar tests (Holm-adjusted) on the same test reviews, figures, example reviews
and each model's most confident mistakes — and name the champion (best validation accuracy).

Everything is read and computed before anything is written, so a failure leaves the old report
whole. The workspace's report promotes its champion in the MLflow registry; a queued experiment's
report does not (promote it deliberately: python -m imdbclf promote <model> --experiment <name>).
"""

import os

import pandas as pd

from imdbclf import console, params, paths, registry, reporting, serving, statistics, tracking

FIGURES = {"history": "Train vs validation accuracy and loss per epoch",
           "tuning": "Tuning: validation accuracy of every trial per hyperparameter value (star: the chosen config)",
           "roc": "ROC curves on the test set"}


def seed_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[c for c in frame.columns if c.startswith("proba_seed_")]]


def correctness(frame: pd.DataFrame):
    """Per review, the fraction of the model's seeds that classify it right."""
    predicted = (seed_columns(frame).to_numpy().T >= serving.THRESHOLD).astype(int)
    return statistics.correctness(frame["label"].to_numpy(), predicted)


def champion_with_lead(rows: list[dict], val_correct: dict, movies, r) -> dict:
    """The best model on validation and its lead over the runner-up, with a CI resampling movies."""
    ranked = sorted(rows, key=lambda row: row["val_accuracy"], reverse=True)
    champion = {"model": ranked[0]["model"]}
    if len(ranked) > 1:
        best, runner_up = ranked[0]["model"], ranked[1]["model"]
        diff, low, high = statistics.bootstrap_ci(val_correct[best] - val_correct[runner_up], r.bootstrap_samples,
                                                  r.confidence, r.seed, clusters=movies)
        champion["lead"] = {"runner_up": runner_up, "diff": diff, "ci_low": low, "ci_high": high,
                            "level": int(round(r.confidence * 100)), "within_uncertainty": low <= 0}
    return champion


@console.stage("report")
def main() -> str:
    p = params.load()
    r = p.report
    with tracking.stage_run(p, "report", {"report": r.model_dump(), "models": p.models}):
        test = paths.read_parquet(paths.prepared("test"))
        val = paths.read_parquet(paths.prepared("val"))
        movies = (val["movie"] if val["movie"].notna().all() else val["id"]).to_numpy()  # clusters for the CIs
        rows, test_correct, val_correct, histories, rocs, tunes, worst, scored = [], {}, {}, {}, {}, {}, {}, {}
        best_epochs, aucs = {}, {}  # of the first seed, whose history and ROC points the figures draw
        seeds = {model: p.model(model).retrain.seeds[0] for model in p.models}  # the registered seed
        for model in p.models:
            tune = paths.read_json(paths.tune_metrics(model))
            retrain = paths.read_json(paths.retrain_metrics(model))
            evaluation = paths.read_json(paths.eval_metrics(model))
            test_predictions = paths.read_parquet(paths.predictions(model, "test"))
            val_predictions = paths.read_parquet(paths.predictions(model, "val"))
            test_correct[model] = correctness(test_predictions)
            val_correct[model] = correctness(val_predictions)
            accuracy, low, high = statistics.bootstrap_ci(val_correct[model], r.bootstrap_samples, r.confidence,
                                                          r.seed, clusters=movies)
            rows.append({"model": model, "config": tune["best"]["config"], "val_accuracy": accuracy,
                         "val_ci_low": low, "val_ci_high": high, "test_accuracy": evaluation["accuracy"],
                         "test_accuracy_std": evaluation["accuracy_std"], "seeds": len(evaluation["seeds"]),
                         "f1": evaluation["f1"], "roc_auc": evaluation["roc_auc"],
                         "trainable_params": retrain["trainable_params"], "train_seconds": retrain["train_seconds"],
                         "reviews_per_second": evaluation["reviews_per_second"],
                         "registered_model": retrain.get("registered_model"),
                         "model_version": retrain.get("model_version")})
            histories[model] = pd.read_csv(paths.history(model))
            best_epochs[model] = retrain["seeds"][0]["best_epoch"]
            aucs[model] = evaluation["seeds"][0]["roc_auc"]
            rocs[model] = pd.read_csv(paths.eval_dir(model) / "roc.csv")
            tunes[model] = tune
            worst[model] = reporting.most_confidently_wrong(test, seed_columns(test_predictions).iloc[:, 0].to_numpy(),
                                                            r.worst_examples)
            scored[model] = paths.read_json(paths.eval_dir(model) / "examples.json")

        pairs = statistics.pairwise(test_correct, r.bootstrap_samples, r.confidence, r.seed)
        champion = champion_with_lead(rows, val_correct, movies, r)
        examples = [{"text": e["text"], **{m: {k: v for k, v in scored[m][i].items() if k != "text"} for m in p.models}}
                    for i, e in enumerate(scored[p.models[0]])]  # per model: probability, label, sentiment
        figures = {title: f"figures/{name}.png" for name, title in FIGURES.items()}
        text = reporting.markdown(rows, pairs, r.confidence, examples, worst, champion, figures)
        drawn = {"history": reporting.plot_histories(histories, best_epochs), "tuning": reporting.plot_tuning(tunes),
                 "roc": reporting.plot_roc(rocs, aucs)}
        prefix = p.tracking.registered_model_prefix
        for row in rows:  # a store that lost its registry gets the versions again from models/
            row["model_version"] = registry.ensure_registered(row["registered_model"], row["model_version"],
                                                              paths.seed_dir(row["model"], seeds[row["model"]]))
        best = next(row for row in rows if row["model"] == champion["model"])
        to_promote = registry.find_version(prefix, best["model"], version=best["model_version"])

        # everything is read and computed: only now are the outputs replaced
        for name, figure in drawn.items():
            reporting.save_figure(figure, paths.REPORT_FIGURES / f"{name}.png")
        paths.write_text(paths.REPORT_MD, text)
        paths.write_json(paths.REPORT_JSON, {"champion": champion["model"], "champion_lead": champion.get("lead"),
                                             "models": rows, "pairs": pairs, "examples": examples})

        tracking.log_metrics({f"{row['model']}_test_accuracy": row["test_accuracy"] for row in rows})
        tracking.log_metrics({f"{row['model']}_val_accuracy": row["val_accuracy"] for row in rows})
        for path in (paths.REPORT_MD, paths.REPORT_JSON):
            tracking.log_artifact(path)
        for figure in sorted(paths.REPORT_FIGURES.glob("*.png")):
            tracking.log_artifact(figure, "figures")
        if "lead" in champion:
            lead = champion["lead"]
            print(f"  lead over {lead['runner_up']} on validation {lead['diff']:+.4f} "
                  f"[{lead['ci_low']:+.4f}, {lead['ci_high']:+.4f}]"
                  + (" — within the uncertainty" if lead["within_uncertainty"] else ""))
        for pair in pairs:
            print(f"  {pair['a']} − {pair['b']}: {pair['accuracy_diff']:+.4f} "
                  f"[{pair['ci_low']:+.4f}, {pair['ci_high']:+.4f}], McNemar p={pair['mcnemar_p']:.3g} "
                  f"(Holm {pair['mcnemar_p_holm']:.3g})")
        if paths.in_queued_experiment():
            name = os.environ.get("DVC_EXP_NAME", "<name>")
            print(f"report: queued experiment: champion not moved "
                  f"(python -m imdbclf promote {champion['model']} --experiment {name})")
        else:
            version = registry.promote_version(prefix, champion["model"], to_promote)
            print(f"report: {registry.champion_uri(prefix)} → {version.tags.get('source_model')} "
                  f"version {version.tags.get('source_version')}")
    return f"champion {champion['model']}; {paths.REPORT_MD} written"


if __name__ == "__main__":
    main()
