"""The Keras callbacks of the Keras families' fit: epoch logging, progress, early stopping by the
pipeline's best-epoch rule, and the record that lets an interrupted fit resume."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from imdbclf import atomic, progress, selection
from imdbclf.families.base import EpochLogger, best_epoch, binary_matrix


class StepTimer(keras.callbacks.Callback):
    """Wall time of each training step (the CPU estimate's timing, `KerasFamily.time_steps`)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


class EpochCallback(keras.callbacks.Callback):
    """Hands each epoch's logs (plus examples/second) to a plain function, e.g. an MLflow logger."""

    def __init__(self, log: EpochLogger, examples_per_epoch: int):
        super().__init__()
        self.log = log
        self.examples = examples_per_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.started = tf.timestamp().numpy()

    def on_epoch_end(self, epoch, logs=None):
        seconds = tf.timestamp().numpy() - self.started
        values = {k: float(v) for k, v in (logs or {}).items() if k != "lr"}
        values["examples_per_second"] = self.examples / max(seconds, 1e-9)
        values["epoch_seconds"] = float(seconds)
        self.log(epoch + 1, values)


class ValidationScores(keras.callbacks.Callback):
    """Adds the selection metric on validation (`val_macro_f1`, ...) to each epoch's logs, which Keras
    computes only for accuracy and loss: one more pass over the validation features, only when the
    selection metric is not accuracy. Place it first: the callbacks after it read the logs it extends."""

    def __init__(self, val_ds: tf.data.Dataset, labels, metric: str, sigmoid: bool):
        super().__init__()
        self.val_ds, self.labels, self.metric, self.sigmoid = val_ds, labels, metric, sigmoid

    def on_epoch_end(self, epoch, logs=None):
        logits = np.asarray(self.model.predict(self.val_ds.map(lambda x, y: x), verbose=0), dtype=np.float64)
        if self.sigmoid:
            proba = binary_matrix(1.0 / (1.0 + np.exp(-logits.reshape(-1))))
        else:
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            proba = shifted / shifted.sum(axis=1, keepdims=True)
        if logs is not None:
            logs.update(selection.epoch_scores(self.labels, proba, [self.metric]))


class EpochProgress(keras.callbacks.Callback):
    """Progress within each epoch instead of Keras' own (`verbose=2` prints only when an epoch ends,
    minutes of silence on a CPU or with a transformer): a bar with ETA on a terminal, a line at every
    ~10% of the epoch's batches otherwise; then one line with the epoch's metrics, on stdout."""

    def __init__(self, steps: int, file=None, tty: bool | None = None, out=None):
        super().__init__()
        self.steps, self.file, self.tty, self.out = steps, file, tty, out
        self.progress: progress.Progress | None = None

    def on_epoch_begin(self, epoch, logs=None):
        steps = (self.params or {}).get("steps") or self.steps
        self.epochs = (self.params or {}).get("epochs", "?")
        self.progress = progress.Progress(steps, f"epoch {epoch + 1}/{self.epochs}", "batch", self.file, self.tty)

    def on_train_batch_end(self, batch, logs=None):
        shown = {k: float(v) for k, v in (logs or {}).items() if k in ("loss", "accuracy")}
        self.progress.update(1, **shown)

    def on_epoch_end(self, epoch, logs=None):
        self.progress.close()
        took = progress.duration(time.perf_counter() - self.progress.started)
        metrics = ", ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items() if k != "lr")
        print(f"epoch {epoch + 1}/{self.epochs}: {metrics} ({took})", file=self.out or sys.stdout, flush=True)


class BestEpochStopping(keras.callbacks.Callback):
    """Early stopping by the pipeline's one best-epoch rule (`families.best_epoch`), not Keras' own
    (strict improvement in one metric), so that the epoch it keeps is the epoch the metrics describe.
    A resumed fit passes the epochs trained before the interruption, which count as if trained now."""

    def __init__(self, patience: int, earlier: dict[str, list[float]] | None = None, metric: str = "accuracy"):
        super().__init__()
        self.patience, self.metric = patience, metric
        self.history = {key: list((earlier or {}).get(key, [])) for key in {f"val_{metric}", "val_loss"}}

    def on_epoch_end(self, epoch, logs=None):
        for key in self.history:  # by epoch number: a resumed fit may redo an epoch it had recorded
            self.history[key][epoch:] = [float((logs or {})[key])]
        best = best_epoch(self.history, self.metric)
        if epoch > best and epoch - best >= self.patience:
            self.model.stop_training = True


# The weights of the best epoch so far (`families.best_epoch`): one file, replaced when a later epoch becomes
# the best, not one per epoch; its name says which epoch it holds.
CHECKPOINT = "epoch-{epoch:03d}.weights.h5"
RECORD = "resume.json"
BACKUP = "backup"


class TrainingRecord(keras.callbacks.Callback):
    """What a checkpoint directory's run depends on, its per-epoch history so far and the weights of its
    best epoch so far: lets a rerun with the same inputs resume after the last complete epoch (from the
    `keras.callbacks.BackupAndRestore` backup of the last epoch's weights, optimizer state and epoch,
    which keeps one) and still report, early-stop on and restore the best of every epoch. So a directory
    holds at most the backup, the record and one weights file (two for a moment while the best moves).

    Place it before the BackupAndRestore in the callback list: an epoch is recorded only once its weights
    file (when it is the best) exists, and the backup never runs ahead of the record."""

    def __init__(self, directory: Path, inputs: dict[str, Any], metric: str = "accuracy"):
        super().__init__()
        self.directory, self.inputs, self.metric = directory, inputs, metric
        self.file = directory / RECORD
        try:
            recorded = json.loads(self.file.read_text())
        except (OSError, ValueError):
            recorded = {}
        if recorded.get("inputs") == inputs and recorded.get("history"):
            self.history: dict[str, list[float]] = recorded["history"]
        else:  # another run's checkpoints: start over
            self.history = {}
            shutil.rmtree(directory / BACKUP, ignore_errors=True)
            for stale in [self.file, *directory.glob("epoch-*.weights.h5"), *directory.glob(".epoch-*.weights.h5")]:
                stale.unlink(missing_ok=True)
        directory.mkdir(parents=True, exist_ok=True)

    def backup(self) -> keras.callbacks.BackupAndRestore:
        return keras.callbacks.BackupAndRestore(str(self.directory / BACKUP))

    def on_epoch_begin(self, epoch, logs=None):
        """Forget the epochs after the one that (re)starts, e.g. recorded but not backed up; then drop
        the weights of a former best, now that the epoch that replaced it is backed up."""
        for values in self.history.values():
            del values[epoch:]
        self._drop_stale_weights()

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            if key != "lr":
                self.history.setdefault(key, []).append(float(value))
        best = self.directory / CHECKPOINT.format(epoch=best_epoch(self.history, self.metric) + 1)
        if best.name == CHECKPOINT.format(epoch=epoch + 1):  # this epoch is the best so far
            tmp = self.directory / f".{best.name}"  # a kill mid-write leaves no half file under the name
            self.model.save_weights(str(tmp))  # the .weights.h5 suffix picks the format that load_weights reads
            os.replace(tmp, best)
        atomic.write_json(self.file, {"inputs": self.inputs, "history": self.history})

    def on_train_end(self, logs=None):
        self._drop_stale_weights()

    def _drop_stale_weights(self) -> None:
        """Keep one epoch's weights: the best of the recorded history. Not done at the end of the epoch
        that becomes best: until its backup is written, a kill would resume before it, and the former
        best's file is the one the history points to."""
        if not self.history.get(f"val_{self.metric}"):
            return
        best = CHECKPOINT.format(epoch=best_epoch(self.history, self.metric) + 1)
        for stale in self.directory.glob("epoch-*.weights.h5"):
            if stale.name != best:
                stale.unlink(missing_ok=True)
