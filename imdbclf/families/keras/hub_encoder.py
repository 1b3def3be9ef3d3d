"""Pretrained BERT-family encoders from TF Hub (BERT-small, ELECTRA-base, or a converted local
checkpoint), fine-tuned end to end: strings → preprocessing → encoder → pooled_output → dropout →
one logit. Handles may be URLs or local directories in the TF Hub SavedModel format."""

from __future__ import annotations

import os

import numpy as np
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401 - registers the ops the preprocessing SavedModels use
import tf_keras as keras

from imdbclf.errors import UserError
from imdbclf.families.keras.base import KerasFamily
from imdbclf.settings.hub_encoder import HubEncoderConfig
from imdbclf.workspace import cache_dir


def load_handle(handle: str, key: str):
    """hub.load with one clear line on failure (offline, typo) instead of a stack trace. Downloads go to
    one TF Hub cache for every experiment of the repo (queued ones run in temp copies), unless the user
    chose another with TFHUB_CACHE_DIR."""
    os.environ.setdefault("TFHUB_CACHE_DIR", str(cache_dir("tfhub")))
    try:
        return hub.load(handle)
    except Exception as err:  # noqa: BLE001 - hub raises many types for the same user mistake
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UserError(f"{key}: cannot load TF Hub handle '{handle}' ({reason}); "
                        "a local directory holding the SavedModel works too") from None


class Preprocess(keras.layers.Layer):
    """Strings → input_word_ids / input_mask / input_type_ids, at the configured sequence length."""

    def __init__(self, handle: str, seq_len: int, key: str = "model.preprocessor", **kwargs):
        super().__init__(**kwargs)
        model = load_handle(handle, key)
        self.tokenize = hub.KerasLayer(model.tokenize, name="tokenize")
        self.pack = hub.KerasLayer(model.bert_pack_inputs, arguments={"seq_length": seq_len}, name="pack")

    def call(self, texts):
        return self.pack([self.tokenize(texts)])


class HubEncoder(KerasFamily):
    name = "hub_encoder"
    Config = HubEncoderConfig
    config: HubEncoderConfig

    def make_encoder(self, train_texts: np.ndarray) -> keras.layers.Layer:
        return Preprocess(self.config.preprocessor, self.config.seq_len,
                          key=f"{self.where}.preprocessor")

    def feature_cache_key(self) -> str | None:
        return f"{self.config.preprocessor}|{self.config.seq_len}"

    def build_core(self, feature_spec) -> keras.Model:
        inputs = {name: keras.Input(shape=(None,), dtype=spec.dtype, name=name) for name, spec in feature_spec.items()}
        handle = load_handle(self.config.encoder, f"{self.where}.encoder")
        encoder = hub.KerasLayer(handle, trainable=True, name="encoder")
        pooled = encoder(inputs)["pooled_output"]
        x = keras.layers.Dropout(self.config.dropout)(pooled)
        logit = keras.layers.Dense(1, dtype="float32", name="logit")(x)
        return keras.Model(inputs, logit, name="hub_classifier")

    @classmethod
    def custom_objects(cls) -> dict:
        return {"KerasLayer": hub.KerasLayer}
