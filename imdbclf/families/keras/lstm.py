"""Bi-LSTM over word ids: TextVectorization (adapted on the training split) → embedding →
bidirectional LSTM → pooling → dropout → logits."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from imdbclf.families.keras.base import KerasFamily
from imdbclf.settings.lstm import BiLSTMConfig


@keras.utils.register_keras_serializable(package="imdbclf")
def standardize(texts: tf.Tensor) -> tf.Tensor:
    """Lower-case, drop IMDB's `<br />` markup and punctuation other than apostrophes."""
    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, r"<br\s*/?>", " ")
    return tf.strings.regex_replace(texts, r"[^a-z0-9' ]", " ")


@keras.utils.register_keras_serializable(package="imdbclf")
class TokenIds(keras.layers.Layer):
    """Strings → fixed-length word ids, truncating at the end or the beginning of the review."""

    def __init__(self, vocab_size: int, seq_len: int, truncate: str = "post", vocabulary=None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.seq_len, self.truncate = vocab_size, seq_len, truncate
        self.vectorize = keras.layers.TextVectorization(
            max_tokens=vocab_size, standardize=standardize, ragged=True, vocabulary=vocabulary
        )

    def adapt(self, texts: np.ndarray) -> None:
        self.vectorize.adapt(tf.data.Dataset.from_tensor_slices(list(texts)).batch(1024))

    def call(self, texts):
        ids = self.vectorize(texts)
        ids = ids[:, : self.seq_len] if self.truncate == "post" else ids[:, -self.seq_len :]
        return ids.to_tensor(shape=[None, self.seq_len])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size, seq_len=self.seq_len, truncate=self.truncate,
            vocabulary=self.vectorize.get_vocabulary(),
        )
        return config


class BiLSTM(KerasFamily):
    name = "lstm"
    Config = BiLSTMConfig
    config: BiLSTMConfig

    def make_encoder(self, train_texts: np.ndarray) -> keras.layers.Layer:
        encoder = TokenIds(self.config.vocab_size, self.config.seq_len, self.config.truncate)
        encoder.adapt(train_texts)
        return encoder

    def build_core(self, feature_spec) -> keras.Model:
        c = self.config
        ids = keras.Input(shape=(c.seq_len,), dtype=feature_spec.dtype, name="token_ids")
        x = keras.layers.Embedding(c.vocab_size, c.embed_dim, mask_zero=c.pooling == "last")(ids)
        x = keras.layers.SpatialDropout1D(c.dropout)(x)
        x = keras.layers.Bidirectional(keras.layers.LSTM(c.lstm_units, return_sequences=c.pooling == "max"))(x)
        if c.pooling == "max":
            x = keras.layers.GlobalMaxPooling1D()(x)
        x = keras.layers.Dropout(c.dropout)(x)
        logit = self.logit_layer()(x)
        return keras.Model(ids, logit, name="bilstm")
