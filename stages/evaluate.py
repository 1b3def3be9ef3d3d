"""evaluate@<model>: test metrics of every retrained seed (and their mean ± std), ROC and confusion
data for `dvc plots`, per-review predictions for the report, and the example reviews scored."""

import argparse

import pandas as pd

from imdbclf import evaluation, families, params, paths, tracking
from imdbclf.errors import exit_on_user_error

SUMMARIZED = ("accuracy", "loss", "precision", "recall", "f1", "roc_auc", "reviews_per_second")


@exit_on_user_error
def main(model: str) -> None:
    p = params.load()
    section = p.model(model)
    test = paths.load_split("test")
    out = paths.eval_dir(model)
    out.mkdir(parents=True, exist_ok=True)
    with tracking.stage_run(p, f"evaluate@{model}", {"model": model, "evaluate": p.evaluate.model_dump()}):
        per_seed, predictions = [], pd.DataFrame({"id": test.ids, "label": test.labels})
        for i, seed in enumerate(section.retrain.seeds):
            family = families.load(paths.seed_dir(model, seed))
            proba, speed = evaluation.timed_predict(family, test.texts, p.evaluate.batch_size)
            scores = {"seed": seed, **evaluation.classification_metrics(test.labels, proba),
                      "reviews_per_second": speed}
            per_seed.append(scores)
            predictions[f"proba_seed_{seed}"] = proba
            if i == 0:
                first, examples = proba, family.predict_proba(p.evaluate.examples) if p.evaluate.examples else []
        result = {**evaluation.summarize_seeds(per_seed, SUMMARIZED),
                  "confusion_matrix": per_seed[0]["confusion_matrix"], "seeds": per_seed, "test_reviews": len(test)}
        scored = [{"text": text, "probability": float(prob), "label": "positive" if prob >= 0.5 else "negative"}
                  for text, prob in zip(p.evaluate.examples, examples)]

        pd.DataFrame(evaluation.roc_points(test.labels, first)).to_csv(out / "roc.csv", index=False)
        pd.DataFrame({"actual": test.labels, "predicted": (first >= 0.5).astype(int)}).to_csv(
            out / "confusion.csv", index=False)
        paths.write_parquet(predictions, out / "predictions.parquet")
        paths.write_json(out / "examples.json", scored)
        paths.write_json(paths.eval_metrics(model), result)

        tracking.log_metrics({k: v for k, v in result.items() if isinstance(v, float)})
        for name in ("roc.csv", "examples.json"):
            tracking.log_artifact(out / name)
        tracking.log_artifact(paths.eval_metrics(model))
        print(f"evaluate@{model}: test accuracy {result['accuracy']:.4f} ± {result['accuracy_std']:.4f}, "
              f"F1 {result['f1']:.4f}, ROC-AUC {result['roc_auc']:.4f}, {result['reviews_per_second']:.0f} reviews/s")
        for row in scored:
            print(f"  {row['probability']:.3f} {row['label']:8s} {row['text'][:70]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a name from `models:` in params.yaml")
    main(parser.parse_args().model)
