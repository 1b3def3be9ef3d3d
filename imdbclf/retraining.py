"""The tuned config trained once per seed on the training split, with early stopping on validation and
checkpoints that let an interrupted fit resume after its last complete epoch."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from imdbclf import crashpoints, families, outputs, selection, sizing, tracking
from imdbclf.data import Split
from imdbclf.families import Family, FitOptions, Strict
from imdbclf.settings.pipeline import ModelParams
from imdbclf.settings.selection import SelectionParams
from imdbclf.settings.sizing import SizingParams


def train_seed(model: str, section: ModelParams, hp: Strict, seed: int, train: Split, val: Split,
               rule: SelectionParams, size: SizingParams) -> tuple[Family, dict[str, list[float]], dict[str, Any]]:
    """Fit, save models/<model>/seed_<seed>/ and drop its checkpoints; return the family, its per-epoch
    history and the seed's line of metrics/retrain/<model>.json. Per-epoch metrics go to the active run.
    The best epoch and the class weights follow `rule`, `auto` batch size and epochs `size`, as in tuning."""

    def on_epoch_end(epoch: int, values: dict) -> None:
        tracking.log_metrics_at_step(epoch, values)
        crashpoints.reached(f"retrain@{model}.epoch{epoch}")

    family = families.create(model, section)
    checkpoints = outputs.checkpoints(model, seed)
    checkpoints.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    hp, epochs = sizing.sized(hp, section.retrain.epochs, len(train), size)
    tracking.log_params(sizing.resolved(hp, epochs))
    counts = train.class_counts()
    metric = selection.metric(rule, counts)
    history = family.fit(train, val, hp, FitOptions(
        epochs=epochs, seed=seed, patience=section.retrain.patience, checkpoint_dir=checkpoints,
        on_epoch_end=on_epoch_end, metric=metric,
        class_weight=selection.class_weights(hp.class_weight, counts, rule)))
    seconds = time.perf_counter() - started
    if family.resumed_from_epoch:  # an interrupted retrain with the same inputs left checkpoints
        print(f"retrain@{model}: seed {seed} resumed after epoch {family.resumed_from_epoch} "
              f"of {epochs}")
        tracking.log_resumed(family.resumed_from_epoch, history)
    family.save(outputs.seed_dir(model, seed))
    outputs.discard_checkpoints(model, seed)  # saved: nothing resumes from them any more
    epoch = families.best_epoch(history, metric)
    return family, history, {"seed": seed, "best_epoch": epoch + 1, "epochs_run": len(history["val_accuracy"]),
                             "metric": metric, "val_score": history[selection.val_key(metric)][epoch],
                             "val_accuracy": history["val_accuracy"][epoch], "val_loss": history["val_loss"][epoch],
                             "train_seconds": seconds, "trainable_params": family.trainable_params(),
                             "resumed_from_epoch": family.resumed_from_epoch}  # train_seconds: since the resume


def history_frame(history: dict[str, list[float]]) -> pd.DataFrame:
    """Per-epoch history with its epoch number first, as `dvc plots` draws it."""
    frame = pd.DataFrame(history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    return frame


def retrain_summary(config: dict, runs: list[dict], registered: str, version: str | int) -> dict[str, Any]:
    return {"config": config, "seeds": runs, "metric": runs[0]["metric"],
            "val_score": sum(r["val_score"] for r in runs) / len(runs),
            "val_accuracy": sum(r["val_accuracy"] for r in runs) / len(runs),
            "train_seconds": sum(r["train_seconds"] for r in runs) / len(runs),
            "trainable_params": runs[0]["trainable_params"], "registered_model": registered, "model_version": version}
