"""evaluate@<model>: test metrics of every retrained seed (and their mean ± std; per class, and macro
over classes), the lead over always guessing the largest class (a warning when there is none), ROC and
confusion data for `dvc plots` (a K×K confusion matrix for K classes), per-text test and validation
predictions for the report, and the example texts scored (params.yaml's, or one test text per class).
The saved models are scored on validation too: those numbers must be the ones retrain reported for the
best epoch."""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from imdbclf import (
    atomic,
    baselines,
    data,
    evaluation,
    families,
    outputs,
    params,
    selection,
    serving,
    significance,
    tracking,
)
from imdbclf.ops.stage import stage


@stage("evaluate@{}")
def main(model: str) -> str:
    p = params.load()
    seeds = p.model(model).retrain.seeds
    test, val = data.load_split("test"), data.load_split("val")
    counts = data.read_train_counts()
    metric = selection.metric(p.selection, counts)
    texts = p.evaluate.examples or evaluation.example_texts(test)  # the user's, or one test text per class
    out = outputs.eval_dir(model)
    with tracking.stage_run(p, f"evaluate@{model}", {"model": model, "evaluate": p.evaluate.model_dump()}):
        tracking.log_datasets(tracking.split_datasets(test, val))  # scored on test; val: the saved model's check
        per_seed, test_proba, val_proba = [], {}, {}
        for seed in seeds:
            family = families.load_verified(outputs.seed_dir(model, seed), Path.cwd())  # as DVC recorded it
            scores, test_proba[seed], val_proba[seed] = evaluation.score_seed(family, test, val,
                                                                               p.evaluate.batch_size, seed)
            per_seed.append(scores)
            if seed == seeds[0]:  # the first seed's model is the registered one: its plots and examples
                examples = family.predict_proba(texts)
                classes = family.classes
        first = test_proba[seeds[0]]
        lead = baselines.lead_over_majority(test.labels, families.predicted_labels(first), counts, metric,
                                            p.report, test.groups)
        result = {**evaluation.summarize_seeds(per_seed, evaluation.SUMMARIZED), "classes": list(classes),
                  "confusion_matrix": per_seed[0]["confusion_matrix"], "per_class": per_seed[0]["per_class"],
                  "seeds": per_seed, "test_texts": len(test), "val_texts": len(val), "metric": metric,
                  "val_score": float(np.mean([selection.score(metric, val.labels, v) for v in val_proba.values()])),
                  "vs_majority": lead}
        scored = serving.predictions(texts, serving.predictions_frame(examples, classes))

        atomic.write_csv(pd.DataFrame(evaluation.roc_points(test.labels, first)), out / "roc.csv")
        names = pd.Series(classes)
        atomic.write_csv(pd.DataFrame({"actual": names[test.labels].to_numpy(),
                                       "predicted": names[families.predicted_labels(first)].to_numpy()}),
                         out / "confusion.csv")
        atomic.write_parquet(evaluation.predictions_table(test, test_proba), outputs.predictions_file(model, "test"))
        atomic.write_parquet(evaluation.predictions_table(val, val_proba), outputs.predictions_file(model, "val"))
        atomic.write_json(out / "examples.json", scored)
        atomic.write_json(outputs.eval_metrics(model), result)
        atomic.write_json(outputs.scores_file(model), evaluation.headline_figures(result))

        tracking.log_metrics({k: v for k, v in result.items() if isinstance(v, float)})
        tracking.log_metrics({"lead_over_majority": lead["diff"], "lead_over_majority_ci_low": lead["ci_low"]})
        for path in (out / "roc.csv", out / "examples.json", outputs.eval_metrics(model)):
            tracking.log_artifact(path)
        print(f"evaluate@{model}: saved model on validation: accuracy {result['val_accuracy']:.4f}, "
              f"loss {result['val_loss']:.4f}")
        for row in scored:
            print(f"  {row['probability']:.3f} {row['label']:8s} {row['text'][:70]}")
        if not lead["beats"]:
            print(baselines.warning(model, lead, classes, counts))
    accuracy = significance.mean_std(result["accuracy"], result["accuracy_std"], len(per_seed))
    k = len(classes)
    f1 = f"F1 {result['f1']:.4f}" if k == 2 else f"macro-F1 {result['macro_f1']:.4f} ({k} classes)"
    return (f"test accuracy {accuracy}, {f1}, ROC-AUC {result['roc_auc']:.4f}, "
            f"{result['texts_per_second']:.0f} texts/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a name from `models:` in params.yaml")
    main(parser.parse_args().model)
