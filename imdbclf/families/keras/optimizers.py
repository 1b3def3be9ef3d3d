"""Optimizers and learning-rate schedules of the Keras families."""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras

from imdbclf.settings.keras import OPTIMIZERS, OptimizerSettings

# Weights that AdamW leaves undecayed, as tf-models-official's create_optimizer does.
NO_DECAY = ("LayerNorm", "layer_norm", "bias")


@keras.utils.register_keras_serializable(package="imdbclf")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then linear decay to 0 at `total_steps`."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = self.peak * step / max(self.warmup_steps, 1)
        decay_span = max(self.total_steps - self.warmup_steps, 1)
        decay = self.peak * tf.maximum(0.0, (self.total_steps - step) / decay_span)
        return tf.where(step < self.warmup_steps, warmup, decay)

    def get_config(self) -> dict:
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def learning_rate(peak: float, total_steps: int, settings: OptimizerSettings):
    if settings.schedule == "constant":
        return peak
    warmup = int(math.ceil(settings.warmup_fraction * total_steps))
    return WarmupLinearDecay(peak, total_steps, warmup)


def make_optimizer(
    name: str, peak_lr: float, total_steps: int, settings: OptimizerSettings
) -> keras.optimizers.Optimizer:
    lr = learning_rate(peak_lr, total_steps, settings)
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=settings.momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr, epsilon=settings.epsilon)
    if name == "adam":
        return keras.optimizers.Adam(lr, epsilon=settings.epsilon)
    if name == "adamw":
        optimizer = keras.optimizers.AdamW(lr, weight_decay=settings.weight_decay, epsilon=settings.epsilon)
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
        return optimizer
    raise ValueError(f"unknown optimizer {name!r} (known: {', '.join(OPTIMIZERS)})")
