"""What the Keras families share: the fit loop, features encoded once per split, saving and reloading.

A Keras family is an *encoder* (raw review strings → features, e.g. token ids) and a *core*
(features → logits: one for two classes, with a sigmoid and binary cross-entropy; K for K classes,
with a softmax and sparse categorical cross-entropy). The encoder runs once per split and its output
is reused by every trial and epoch; the saved model is encoder + core + sigmoid/softmax, so it takes
raw strings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from imdbclf import codedeps
from imdbclf.data import Split
from imdbclf.errors import UserError
from imdbclf.families.base import Family, FitOptions, StepTiming, best_epoch, binary_matrix
from imdbclf.families.keras.callbacks import (
    CHECKPOINT,
    BestEpochStopping,
    EpochCallback,
    EpochProgress,
    StepTimer,
    TrainingRecord,
    ValidationScores,
)
from imdbclf.families.keras.feature_cache import cached, fingerprint, split_fingerprint
from imdbclf.families.keras.optimizers import make_optimizer
from imdbclf.progress import Progress
from imdbclf.settings.keras import KerasConfig, KerasHyperparameters

__all__ = ["KerasConfig", "KerasHyperparameters", "KerasFamily"]

SAVED_MODEL = "saved_model"
TRAINABLE_PARAMS = "trainable_params.txt"


def precision_policy(setting: str) -> str:
    if setting == "off":
        return "float32"
    if setting == "auto":
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return "float32"
        major = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))[0]
        return "mixed_bfloat16" if major >= 8 else "mixed_float16"
    return setting


def distribution_strategy() -> tf.distribute.Strategy:
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class KerasFamily(Family):
    config: KerasConfig
    Hyperparameters = KerasHyperparameters

    def __init__(self, config: KerasConfig):
        super().__init__(config)
        self.encoder: keras.layers.Layer | None = None
        self.core: keras.Model | None = None
        self.model: keras.Model | None = None  # strings → P(positive)
        self._features: dict[str, object] = {}
        self._trainable_params: int | None = None  # known without the core once reloaded

    # -- what a subclass provides
    def make_encoder(self, train_texts: np.ndarray) -> keras.layers.Layer:
        """Strings → features; may learn from the training texts (e.g. a vocabulary)."""
        raise NotImplementedError

    def build_core(self, feature_spec) -> keras.Model:
        """Features → `self.logits` float32 logits (`self.logit_layer()` makes the last layer)."""
        raise NotImplementedError

    @property
    def logits(self) -> int:
        """One logit for two classes (sigmoid), K for K classes (softmax)."""
        return 1 if len(self.classes) == 2 else len(self.classes)

    def logit_layer(self) -> keras.layers.Dense:
        return keras.layers.Dense(self.logits, dtype="float32", name="logit")

    def _loss_and_accuracy(self):
        if self.logits == 1:
            return (keras.losses.BinaryCrossentropy(from_logits=True),
                    keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0))
        return (keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                keras.metrics.SparseCategoricalAccuracy(name="accuracy"))

    def _targets(self, labels: np.ndarray) -> np.ndarray:
        return labels.astype("float32") if self.logits == 1 else labels.astype("int32")

    def feature_cache_key(self) -> str | None:
        """Identifies an encoder that learns nothing from the data, so its output can be cached on disk
        and shared between processes (tune and retrain) and experiments; None: memory only."""
        return None

    # -- shared machinery
    def encode(self, texts: np.ndarray, batch_size: int = 1024, progress: str | None = None):
        """Features of the texts; with `progress` (a description), the progress of the batches."""
        starts = range(0, len(texts), batch_size)
        shown = Progress(len(starts), progress) if progress and len(starts) > 1 else None
        outputs = []
        for i in starts:
            outputs.append(self.encoder(tf.constant(self.prepared(texts[i : i + batch_size]))))
            if shown:
                shown.update()
        if shown:
            shown.close()
        return tf.nest.map_structure(lambda *parts: tf.concat(parts, 0).numpy(), *outputs)

    def features(self, split: Split, progress: bool = False):
        """Encode a split once; every later trial and epoch (and, when cacheable, process) reuses it."""
        key = fingerprint(split.texts)
        if key not in self._features:
            what = f"tokenize {split.name}" if progress else None
            self._features[key] = cached(self.feature_cache_key(), key,
                                         lambda: self.encode(split.texts, progress=what))
        return self._features[key]

    def dataset(self, split: Split, batch_size: int, shuffle_seed: int | None,
                progress: bool = False) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices((self.features(split, progress), self._targets(split.labels)))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(split), seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def fit(self, train: Split, val: Split, hp: KerasHyperparameters, options: FitOptions) -> dict[str, list[float]]:
        keras.utils.set_random_seed(options.seed)
        self.classes = train.classes
        policy = precision_policy(self.config.mixed_precision)
        keras.mixed_precision.set_global_policy(policy)
        if self.encoder is None:  # a learned vocabulary is a function of the training texts: same on resume
            self.encoder = self.make_encoder(np.array(self.prepared(train.texts), dtype=object))
        train_ds = self.dataset(train, hp.batch_size, options.seed, progress=options.verbose > 0)
        val_ds = self.dataset(val, hp.batch_size, None, progress=options.verbose > 0)
        steps_per_epoch = int(np.ceil(len(train) / hp.batch_size))
        steps = steps_per_epoch * options.epochs
        with distribution_strategy().scope():
            self.core = self.build_core(train_ds.element_spec[0])
            loss, accuracy = self._loss_and_accuracy()
            self.core.compile(
                optimizer=make_optimizer(hp.optimizer, hp.learning_rate, steps, self.config.optimizer),
                loss=loss, metrics=[accuracy], jit_compile=self.config.jit_compile,
            )
        callbacks: list[keras.callbacks.Callback] = [keras.callbacks.TerminateOnNaN()]
        if options.metric != "accuracy":  # first: every later callback sees val_<metric> in the epoch's logs
            callbacks.append(ValidationScores(val_ds, val.labels, options.metric, self.logits == 1))
        if options.verbose:
            callbacks.append(EpochProgress(steps_per_epoch))
        if options.on_epoch_end:
            callbacks.append(EpochCallback(options.on_epoch_end, len(train)))
        record = None
        if options.checkpoint_dir:
            record = TrainingRecord(options.checkpoint_dir, self.fit_inputs(train, val, hp, options, policy),
                                    options.metric)
            callbacks += [record, record.backup()]
        if options.patience is not None:
            callbacks.append(BestEpochStopping(options.patience, record.history if record else None, options.metric))
        fitted = self.core.fit(
            train_ds, validation_data=val_ds, epochs=options.epochs, callbacks=callbacks, verbose=0,
            class_weight=options.class_weight,
        )
        trained = {k: [float(v) for v in vs] for k, vs in fitted.history.items() if k != "lr"}
        history = record.history if record else trained
        self.resumed_from_epoch = len(history["loss"]) - len(trained.get("loss", []))
        if record:  # the weights of the epoch that the reported metrics describe
            weights = options.checkpoint_dir / CHECKPOINT.format(epoch=best_epoch(history, options.metric) + 1)
            if not weights.exists():
                raise UserError(f"{weights}: the best epoch's weights are missing; delete "
                                f"{options.checkpoint_dir} to train this model from the start")
            self.core.load_weights(str(weights))
        keras.mixed_precision.set_global_policy("float32")
        self.model = self._inference_model()
        return history

    def time_steps(self, train: Split, hp: KerasHyperparameters, steps: int) -> StepTiming:
        """The median time of `steps` training steps at `hp`, after one warm-up step that traces the graph,
        of a fresh encoder and core on the first batches of `train` (the encoder learns from those alone:
        a vocabulary's size is the setting's, whatever it learns); this family's own model is untouched."""
        keras.utils.set_random_seed(0)
        keras.mixed_precision.set_global_policy(precision_policy(self.config.mixed_precision))
        kept_classes, self.classes = self.classes, train.classes
        try:
            rows = min(len(train), (steps + 1) * hp.batch_size)
            texts = np.array(self.prepared(train.texts[:rows]), dtype=object)
            features = self.make_encoder(texts)(tf.constant(list(texts)))
            labels = self._targets(train.labels[:rows])
            ds = tf.data.Dataset.from_tensor_slices((features, labels)).repeat().batch(hp.batch_size)
            total = math.ceil(len(train) / hp.batch_size)
            with distribution_strategy().scope():
                core = self.build_core(ds.element_spec[0])
                core.compile(optimizer=make_optimizer(hp.optimizer, hp.learning_rate, total, self.config.optimizer),
                             loss=self._loss_and_accuracy()[0], jit_compile=self.config.jit_compile)
            timer = StepTimer()
            core.fit(ds, steps_per_epoch=steps + 1, epochs=1, callbacks=[timer], verbose=0)
        finally:
            keras.mixed_precision.set_global_policy("float32")
            self.classes = kept_classes
        return StepTiming(steps_per_epoch=total, seconds_per_step=float(np.median(timer.seconds[1:])))

    def fit_inputs(self, train: Split, val: Split, hp: KerasHyperparameters, options: FitOptions,
                   precision: str) -> dict:
        """What a fit's checkpoints depend on: a rerun resumes from them only if all of it is unchanged
        (the code too, as for a reused tuning trial: an edited model would not fit its checkpoint)."""
        code = codedeps.digest(codedeps.closure(type(self).__module__))
        return {"family": self.name, "code": code, "config": self.config.model_dump(mode="json"),
                "hyperparameters": hp.model_dump(mode="json"), "epochs": options.epochs, "seed": options.seed,
                "patience": options.patience, "precision": precision, "metric": options.metric,
                "class_weight": {str(c): w for c, w in (options.class_weight or {}).items()},
                "train": split_fingerprint(train), "val": split_fingerprint(val)}

    def _inference_model(self) -> keras.Model:
        texts = keras.Input(shape=(), dtype=tf.string, name="text")
        logit = self.core(self.encoder(texts))
        activation = "sigmoid" if self.logits == 1 else "softmax"
        prob = keras.layers.Activation(activation, dtype="float32", name="probability")(logit)
        return keras.Model(texts, prob)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        texts = tf.constant(self.prepared(texts))
        probs = np.asarray(self.model.predict(texts, batch_size=batch_size, verbose=0), dtype=np.float64)
        return binary_matrix(probs) if probs.ndim == 1 or probs.shape[1] == 1 else probs

    def runtime(self) -> dict[str, str]:
        gpus = tf.config.list_physical_devices("GPU")
        device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu") if gpus else "cpu"
        return {"device": device, "gpus": str(len(gpus)), "precision": precision_policy(self.config.mixed_precision)}

    def trainable_params(self) -> int:
        if self.core is None:
            return self._trainable_params
        return int(sum(np.prod(w.shape) for w in self.core.trainable_weights))

    def _save(self, path: Path) -> None:
        self.model.save(path / SAVED_MODEL, save_format="tf", include_optimizer=False)
        (path / TRAINABLE_PARAMS).write_text(str(self.trainable_params()))

    @classmethod
    def _load(cls, path: Path, config: KerasConfig) -> KerasFamily:
        family = cls(config)
        family.model = keras.models.load_model(path / SAVED_MODEL, compile=False, custom_objects=cls.custom_objects())
        family._trainable_params = int((path / TRAINABLE_PARAMS).read_text())
        return family

    @classmethod
    def custom_objects(cls) -> dict:
        return {}
