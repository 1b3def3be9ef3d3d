"""report: compare every evaluated model — table, validation accuracy with a CI by group, paired bootstrap
CIs and McNemar tests (Holm-adjusted) on the same test texts, figures, example texts and each model's
most confident mistakes — beside the baselines (always the largest class; random draws in the training
shares), and name the champion (best validation score of the selection metric: accuracy, or macro-F1
when the classes are imbalanced).

Everything is read and computed before anything is written, so a failure leaves the old report
whole. The workspace's report promotes its champion in the MLflow registry; a queued experiment's
report does not (promote it deliberately: python -m imdbclf promote <model> --experiment <name>).
"""

import os

from imdbclf import atomic, baselines, data, model_registry, outputs, params, tracking, workspace
from imdbclf.ensemble import ENSEMBLE
from imdbclf.ops.stage import stage
from imdbclf.reporting import compare, figures, markdown


@stage("report")
def main() -> str:
    p = params.load()
    r, prefix = p.report, p.tracking.registered_model_prefix
    with tracking.stage_run(p, "report", {"report": r.model_dump(), "models": p.models}):
        test = atomic.read_parquet(outputs.prepared_file("test"))
        val = atomic.read_parquet(outputs.prepared_file("val"))
        counts = data.read_train_counts()
        models = [compare.ModelOutputs.read(model) for model in p.models]
        if p.ensemble.enabled and (combined := compare.ModelOutputs.read_ensemble()) is not None:
            models.append(combined)  # the ensemble stage's: a model like the others, which can be champion
        result = compare.compare(models, test, val, r, counts, p.selection)
        shown = {title: f"figures/{name}.png" for name, title in figures.TITLES.items()}
        text = markdown.markdown(result.rows, result.pairs, r.confidence, result.examples, result.worst,
                                 result.champion, shown, p.tracking.experiment, result.grouped_by,
                                 guesses=result.guesses, why=result.why)
        drawn = figures.draw(result)
        for row in result.rows:  # a store that lost its registry gets the versions again from models/
            saved = (outputs.ENSEMBLE_MODEL if row["model"] == ENSEMBLE
                     else outputs.seed_dir(row["model"], p.model(row["model"]).retrain.seeds[0]))
            row["model_version"] = model_registry.ensure_registered(row["registered_model"], row["model_version"],
                                                                    saved)
        champion = result.champion["model"]
        best = next(row for row in result.rows if row["model"] == champion)
        to_promote = model_registry.find_version(prefix, champion, version=best["model_version"])

        # everything is read and computed: only now are the outputs replaced
        for name, figure in drawn.items():
            figures.save_figure(figure, outputs.REPORT_FIGURES / f"{name}.png")
        atomic.write_text(outputs.REPORT_MD, text)
        atomic.write_json(outputs.REPORT_JSON, result.as_json())
        atomic.write_json(outputs.CHAMPION_JSON, result.headline())

        tracking.log_metrics({f"{row['model']}_test_accuracy": row["test_accuracy"] for row in result.rows})
        tracking.log_metrics({f"{row['model']}_val_accuracy": row["val_accuracy"] for row in result.rows})
        for path in (outputs.REPORT_MD, outputs.REPORT_JSON):
            tracking.log_artifact(path)
        for figure in sorted(outputs.REPORT_FIGURES.glob("*.png")):
            tracking.log_artifact(figure, "figures")
        print("\n".join(result.lines()))
        for row in result.not_beating():
            print(baselines.warning(row["model"], row["vs_majority"], row["classes"], counts))
        if workspace.in_queued_experiment():
            print(f"report: queued experiment: champion not moved (python -m imdbclf promote {champion} "
                  f"--experiment {os.environ.get('DVC_EXP_NAME', '<name>')})")
        else:
            version = model_registry.promote_version(prefix, champion, to_promote)
            print(f"report: {model_registry.champion_uri(prefix)} → {version.tags.get('source_model')} "
                  f"version {version.tags.get('source_version')}")
    return f"champion {champion}; {outputs.REPORT_MD} written"


if __name__ == "__main__":
    main()
