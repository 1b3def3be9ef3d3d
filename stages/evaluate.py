"""evaluate@<model>: test metrics of every retrained seed (and their mean ± std), ROC and confusion
data for `dvc plots`, per-review test and validation predictions for the report, and the example
reviews scored. The saved models are scored on validation too: those numbers must be the ones
retrain reported for the best epoch."""

import argparse

import pandas as pd

from imdbclf import console, evaluation, families, params, paths, serving, statistics, tracking

SUMMARIZED = ("accuracy", "loss", "precision", "recall", "f1", "roc_auc", "reviews_per_second", "val_accuracy",
              "val_loss")


@console.stage("evaluate@{}")
def main(model: str) -> str:
    p = params.load()
    section = p.model(model)
    test, val = paths.load_split("test"), paths.load_split("val")
    out = paths.eval_dir(model)
    out.mkdir(parents=True, exist_ok=True)
    with tracking.stage_run(p, f"evaluate@{model}", {"model": model, "evaluate": p.evaluate.model_dump()}):
        tracking.log_datasets(tracking.split_datasets(test, val))  # scored on test; val: the saved model's check
        per_seed = []
        predictions = {split.name: pd.DataFrame({"id": split.ids, "movie": split.movies, "label": split.labels})
                       for split in (test, val)}
        for i, seed in enumerate(section.retrain.seeds):
            family = families.load(paths.seed_dir(model, seed))
            proba, speed = evaluation.timed_predict(family, test.texts, p.evaluate.batch_size, f"seed {seed}: test")
            # the saved model on validation: the numbers retrain reported for its best epoch, reproduced
            val_proba = evaluation.predict(family, val.texts, p.evaluate.batch_size, f"seed {seed}: validation")
            val_scores = evaluation.classification_metrics(val.labels, val_proba)
            scores = {"seed": seed, **evaluation.classification_metrics(test.labels, proba),
                      "reviews_per_second": speed, "val_accuracy": val_scores["accuracy"],
                      "val_loss": val_scores["loss"]}
            per_seed.append(scores)
            predictions["test"][f"proba_seed_{seed}"] = proba
            predictions["val"][f"proba_seed_{seed}"] = val_proba
            if i == 0:
                first, examples = proba, family.predict_proba(p.evaluate.examples) if p.evaluate.examples else []
        result = {**evaluation.summarize_seeds(per_seed, SUMMARIZED),
                  "confusion_matrix": per_seed[0]["confusion_matrix"], "seeds": per_seed, "test_reviews": len(test),
                  "val_reviews": len(val)}
        scored = serving.predictions(p.evaluate.examples, examples)

        paths.write_csv(pd.DataFrame(evaluation.roc_points(test.labels, first)), out / "roc.csv")
        paths.write_csv(pd.DataFrame({"actual": test.labels, "predicted": (first >= serving.THRESHOLD).astype(int)}),
                        out / "confusion.csv")
        paths.write_parquet(predictions["test"], paths.predictions(model, "test"))
        paths.write_parquet(predictions["val"], paths.predictions(model, "val"))
        paths.write_json(out / "examples.json", scored)
        paths.write_json(paths.eval_metrics(model), result)

        tracking.log_metrics({k: v for k, v in result.items() if isinstance(v, float)})
        for name in ("roc.csv", "examples.json"):
            tracking.log_artifact(out / name)
        tracking.log_artifact(paths.eval_metrics(model))
        print(f"evaluate@{model}: saved model on validation: accuracy {result['val_accuracy']:.4f}, "
              f"loss {result['val_loss']:.4f}")
        for row in scored:
            print(f"  {row['probability']:.3f} {row['sentiment']:8s} {row['text'][:70]}")
    accuracy = statistics.mean_std(result["accuracy"], result["accuracy_std"], len(per_seed))
    return (f"test accuracy {accuracy}, F1 {result['f1']:.4f}, ROC-AUC {result['roc_auc']:.4f}, "
            f"{result['reviews_per_second']:.0f} reviews/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a name from `models:` in params.yaml")
    main(parser.parse_args().model)
