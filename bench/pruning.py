"""Pruning pays: the Bi-LSTM's grid on a subsample of the real archive, searched in full and with
successive halving, through the real tune stage (`dvc repro tune@lstm` in a scratch project, each
search with a study storage of its own so that neither reuses the other's trials).
Writes metrics/bench/pruning.json. Targets: the pruned search's best validation accuracy within 0.5
points of the full grid's, with at most 40% of its training epochs.

Sizes: 8,000 training reviews so that one epoch already ranks the configs (successive halving
decides after the first), and 5,000 validation reviews so that the accuracy the target compares has
a standard error near 0.5 points (with 2,500 it was 0.7, larger than the target itself). Each trial's
validation accuracy per epoch is recorded under "curves": what the pruner saw."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import optuna
import yaml

from bench.common import REPO, archive, make_project, run, with_overrides, write_result

SETTINGS = {  # the bench's overrides of params.yaml, recorded with the result
    "split.max_train": 8000, "split.max_val": 5000, "split.max_test": 100,
    "lstm.model": {"vocab_size": 10000, "seq_len": 200, "truncate": "pre", "embed_dim": 32, "lstm_units": 16,
                   "dropout": 0.3},
    "lstm.tune.strategy": "grid", "lstm.tune.epochs": 6,
    "lstm.tune.grid": {"optimizer": ["adam", "rmsprop", "sgd"], "batch_size": [32, 64],
                       "learning_rate": [0.003, 0.001]},
}
PRUNED = {"lstm.tune.pruner": "successive_halving",
          "lstm.tune.pruner_args": {"min_resource": 1, "reduction_factor": 3}}


def search(project: Path, params: dict, storage: Path) -> dict:
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    started = time.perf_counter()
    run(["dvc", "repro", "tune@lstm"], project, stream=True,
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}", "IMDBCLF_TUNING_STORAGE": str(storage)})
    tune = json.loads((project / "metrics/tune/lstm.json").read_text())
    return {"best_val_accuracy": tune["best"]["val_accuracy"], "best": tune["best"]["config"],
            "epochs_trained": tune["epochs_trained"], "trials": len(tune["trials"]), "pruned": tune["pruned"],
            "seconds": round(time.perf_counter() - started, 1), "curves": curves(storage)}


def curves(storage: Path) -> dict[str, list[float]]:
    """Each trial's validation accuracy per epoch, in the order trials ran: what the pruner saw."""
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage)))
    found = {}
    for summary in optuna.get_all_study_summaries(journal):
        for trial in optuna.load_study(study_name=summary.study_name, storage=journal).trials:
            history = trial.user_attrs.get("history", {})
            found[trial.user_attrs["config"]] = [round(v, 4) for v in history.get("val_accuracy", [])]
    return found


def main() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = str(archive())
    params["models"] = ["lstm"]
    params = with_overrides(params, SETTINGS)
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "project", params)
        full = search(project, params, Path(tmp) / "full.journal")
        pruned = search(project, with_overrides(params, PRUNED), Path(tmp) / "pruned.journal")
    gap = (full["best_val_accuracy"] - pruned["best_val_accuracy"]) * 100
    ratio = pruned["epochs_trained"] / full["epochs_trained"]
    write_result("pruning", {
        "full_grid": full, "successive_halving": pruned,
        "accuracy_gap_points": round(gap, 2), "epochs_ratio": round(ratio, 3),
        "targets": {"accuracy_gap_points_at_most": 0.5, "epochs_ratio_at_most": 0.4},
        "met": gap <= 0.5 and ratio <= 0.4, "settings": {**SETTINGS, **PRUNED},
    })
    print(f"full grid: best {full['best_val_accuracy']:.4f} in {full['epochs_trained']} epochs; "
          f"successive halving: best {pruned['best_val_accuracy']:.4f} in {pruned['epochs_trained']} epochs "
          f"({ratio:.0%} of the epochs, {gap:+.2f} points)")


if __name__ == "__main__":
    main()
