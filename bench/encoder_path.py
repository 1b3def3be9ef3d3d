"""What the GPU and torch benches share: fine-tuning speed through the pipeline's own path — a TF Hub
SavedModel (as `convert-bert` writes it) loaded by the `hub_encoder` family — in training examples
per second, from the second epoch on (the first one traces the graph)."""

from __future__ import annotations

import numpy as np

from imdbclf import families
from imdbclf.families.keras.base import KerasHyperparameters
from imdbclf.families.keras.hub_encoder import HubEncoderConfig


def pipeline_train_speed(preprocessor: str, encoder: str, texts: list[str], seq_len: int, batch: int,
                         mixed_precision: str = "off", xla: bool = False, epochs: int = 2) -> float:
    """Examples/second of the hub_encoder family's fit on `texts` (labels alternate), last epoch."""
    config = HubEncoderConfig(encoder=encoder, preprocessor=preprocessor, seq_len=seq_len,
                              mixed_precision=mixed_precision, jit_compile=xla)
    family = families.family_class("hub_encoder")(config)
    labels = np.arange(len(texts)) % 2
    split = families.Split("bench", np.array(texts, dtype=object), labels)
    speeds: list[float] = []
    family.fit(split, split.subsample(batch, 0), KerasHyperparameters(optimizer="adamw", batch_size=batch,
                                                                        learning_rate=3e-5),
               families.FitOptions(epochs=epochs, verbose=0,
                                   on_epoch_end=lambda epoch, logs: speeds.append(logs["examples_per_second"])))
    return speeds[-1]
