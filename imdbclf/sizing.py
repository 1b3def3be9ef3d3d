"""Models sized to the data: a neural family's `auto` batch size and epochs follow the number of
training texts, so that 500 texts get small batches and enough epochs for hundreds of optimizer steps,
and 500,000 get large batches and a couple of epochs. The rule (`sizing:` in params.yaml):

    batch  = the power of two nearest n / texts_per_batch, within [min_batch, max_batch]
    epochs = ceil(min_steps / ceil(n / batch)), within [min_epochs, max_epochs]

481 texts: batch 16, 31 steps an epoch, 20 epochs; 20,000: batch 128, 157 steps, 4 epochs; 500,000:
batch 128, 2 epochs. The learning-rate schedule (warm-up and decay) is laid over the steps this gives;
early stopping on validation ends a retrain before the last epoch when it stops improving."""

from __future__ import annotations

import math

from imdbclf.settings import Strict
from imdbclf.settings.sizing import SizingParams

AUTO = "auto"


def batch_size(setting: int | str, n: int, rule: SizingParams) -> int:
    if setting != AUTO:
        return int(setting)
    nearest = 2 ** round(math.log2(max(n / rule.texts_per_batch, 1)))
    return int(min(max(nearest, rule.min_batch), rule.max_batch))


def epochs(setting: int | str, n: int, batch: int, rule: SizingParams) -> int:
    if setting != AUTO:
        return int(setting)
    steps_per_epoch = max(math.ceil(n / batch), 1)
    return int(min(max(math.ceil(rule.min_steps / steps_per_epoch), rule.min_epochs), rule.max_epochs))


def sized(hp: Strict, epochs_setting: int | str, n: int, rule: SizingParams) -> tuple[Strict, int]:
    """The hyperparameters and epochs a fit on `n` training texts uses, every `auto` resolved. A family
    without a batch size (a solver that runs once) takes one epoch for `auto`."""
    if getattr(hp, "batch_size", None) is None:
        return hp, 1 if epochs_setting == AUTO else int(epochs_setting)
    batch = batch_size(hp.batch_size, n, rule)
    return hp.model_copy(update={"batch_size": batch}), epochs(epochs_setting, n, batch, rule)


def resolved(hp: Strict, epochs_used: int) -> dict[str, int]:
    """What a run logs beside its config: the batch size and epochs it trained with."""
    used = {"epochs_used": epochs_used}
    if getattr(hp, "batch_size", None) is not None:
        used["batch_size_used"] = hp.batch_size
    return used
