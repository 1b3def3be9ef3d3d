"""all-MiniLM-L6-v2, converted to TF Hub format, as the `bert_small` handles, fine-tuned through the
real pipeline (tune → retrain → evaluate, `dvc repro` in a scratch copy of the project) on the
real archive: at most 4,000 training reviews, 2,000 test reviews, 2 CPU cores.
Writes metrics/bench/minilm_imdb.json (accuracy, seconds; target ≥ 0.85 within 40 minutes)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import REPO, archive, converted_minilm, make_project, run, with_overrides, write_result

SETTINGS = {  # the bench's overrides of params.yaml, recorded with the result
    "split.max_train": 4000, "split.max_val": 1000, "split.max_test": 2000,
    "bert_small.model.seq_len": 192,
    "bert_small.tune.epochs": 1, "bert_small.tune.max_train": 1000,
    "bert_small.tune.grid": {"optimizer": ["adamw"], "batch_size": [32], "learning_rate": [1e-4, 5e-5]},
    "bert_small.retrain.epochs": 2, "bert_small.retrain.patience": 1,
}


def bench_params(preprocessor: Path, encoder: Path) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = str(archive())
    params["models"] = ["bert_small"]
    params["bert_small"]["model"].update(preprocessor=str(preprocessor), encoder=str(encoder))
    return with_overrides(params, SETTINGS)


def main() -> None:
    preprocessor, encoder = converted_minilm()
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "project", bench_params(preprocessor, encoder))
        store = f"sqlite:///{REPO / 'mlflow.db'}"  # the runs show up in the repo's MLflow UI
        started = time.perf_counter()
        run(["dvc", "repro"], project, env={"MLFLOW_TRACKING_URI": store, "DVC_EXP_NAME": "bench-minilm-imdb"},
            stream=True)
        seconds = time.perf_counter() - started
        evaluation = json.loads((project / "metrics/eval/bert_small.json").read_text())
        tune = json.loads((project / "metrics/tune/bert_small.json").read_text())
        data = json.loads((project / "metrics/data.json").read_text())
    write_result("minilm_imdb", {
        "encoder": "all-MiniLM-L6-v2 (6 layers, 384 hidden), converted with `python -m imdbclf convert-bert`",
        "accuracy": evaluation["accuracy"], "f1": evaluation["f1"], "roc_auc": evaluation["roc_auc"],
        "seconds": round(seconds, 1), "test_texts": evaluation["test_texts"],
        "train_reviews": data["splits"]["train"]["count"], "trials": len(tune["trials"]),
        "best": tune["best"]["config"], "settings": SETTINGS,
    })


if __name__ == "__main__":
    main()
