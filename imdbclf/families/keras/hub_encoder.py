"""Pretrained BERT-family encoders from TF Hub (BERT-small, ELECTRA-base, or a converted local
checkpoint), fine-tuned end to end: strings → preprocessing → encoder → pooled_output → dropout →
one logit. Handles may be URLs or local directories in the TF Hub SavedModel format."""

from __future__ import annotations

import http.client
import os
import tarfile
import urllib.error
import urllib.parse
import zlib

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401 - registers the ops the preprocessing SavedModels use
import tf_keras as keras

from imdbclf.errors import UserError
from imdbclf.families.keras.base import KerasFamily
from imdbclf.settings.hub_encoder import HubEncoderConfig
from imdbclf.workspace import cache_dir


def load_handle(handle: str, key: str):
    """hub.load with one clear line on failure (offline, typo, a refused or cut-off download) instead of
    a stack trace. Downloads go to one TF Hub cache for every experiment of the repo (queued ones run in
    temp copies), unless the user chose another with TFHUB_CACHE_DIR; a cached handle loads offline."""
    os.environ.setdefault("TFHUB_CACHE_DIR", str(cache_dir("tfhub")))
    try:
        return hub.load(handle)
    except Exception as err:  # noqa: BLE001 - hub raises many types for the same user mistake
        raise UserError(f"{key}: cannot load TF Hub handle '{handle}' ({_why(err)}); {_instead(handle)}") from None


def _why(err: Exception) -> str:
    """The reason in a few words; a signed storage URL is named by its host and path, not its signature."""
    if isinstance(err, urllib.error.HTTPError):
        where = urllib.parse.urlsplit(err.url or "")
        refused = " (tfhub.dev redirects to Kaggle, whose storage refuses some requests)" if err.code in (401, 403) \
            else ""
        return f"HTTP {err.code} from {where.netloc}{where.path}{refused}"
    if isinstance(err, urllib.error.URLError):
        return f"cannot reach it: {err.reason}"
    # hub reports a tarball it cannot unpack as "<url> does not appear to be a valid module" (and caches
    # nothing); the others are what a connection closed mid-body raises
    if isinstance(err, (tarfile.TarError, EOFError, zlib.error, http.client.IncompleteRead)) \
            or "does not appear to be a valid module" in str(err):
        return "the download is not a complete model archive: cut off, or not a .tar.gz"
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _instead(handle: str) -> str:
    if handle.startswith(("http://", "https://")):
        return ("download it where the internet is reachable, or use its Kaggle Models handle "
                "(https://www.kaggle.com/models/...); a local directory works too, e.g. one written by "
                "`python -m imdbclf convert-bert`")
    return "a local directory holding the SavedModel works too"


def head_and_tail(tokens: tf.RaggedTensor, head: int, tail: int) -> tf.RaggedTensor:
    """Each review's first `head` and last `tail` wordpieces (all of a shorter one), as [batch, (tokens),
    (1)]: the [batch, (words), (wordpieces)] shape that the preprocessors' bert_pack_inputs takes."""
    flat = tokens.merge_dims(-2, -1)
    position = tf.ragged.range(flat.row_lengths())
    kept = tf.ragged.boolean_mask(flat, (position < head) | (position >= tf.expand_dims(flat.row_lengths(), 1) - tail))
    return tf.RaggedTensor.from_nested_row_lengths(
        kept.flat_values, [kept.row_lengths(), tf.ones_like(kept.flat_values, dtype=tf.int64)])


class Preprocess(keras.layers.Layer):
    """Strings → input_word_ids / input_mask / input_type_ids, at the configured sequence length;
    `head_tokens`: keep a long review's head and tail (None: its head, as bert_pack_inputs trims)."""

    def __init__(self, handle: str, seq_len: int, key: str = "model.preprocessor", head_tokens: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        model = load_handle(handle, key)
        self.tokenize = hub.KerasLayer(model.tokenize, name="tokenize")
        self.pack = hub.KerasLayer(model.bert_pack_inputs, arguments={"seq_length": seq_len}, name="pack")
        self.head_tail = None if head_tokens is None else (head_tokens, seq_len - 2 - head_tokens)

    def call(self, texts):
        tokens = self.tokenize(texts)
        return self.pack([tokens if self.head_tail is None else head_and_tail(tokens, *self.head_tail)])


class HubEncoder(KerasFamily):
    name = "hub_encoder"
    Config = HubEncoderConfig
    config: HubEncoderConfig

    def make_encoder(self, train_texts: np.ndarray) -> keras.layers.Layer:
        head = self.config.head_tokens if self.config.truncate == "head_tail" else None
        return Preprocess(self.config.preprocessor, self.config.seq_len, key=f"{self.where}.preprocessor",
                          head_tokens=head)

    def feature_cache_key(self) -> str | None:
        key = f"{self.config.preprocessor}|{self.config.seq_len}"
        if self.config.truncate != "head":
            key += f"|head_tail={self.config.head_tokens}"
        return key + ("|normalized" if self.config.normalize_text else "")

    def build_core(self, feature_spec) -> keras.Model:
        inputs = {name: keras.Input(shape=(None,), dtype=spec.dtype, name=name) for name, spec in feature_spec.items()}
        handle = load_handle(self.config.encoder, f"{self.where}.encoder")
        encoder = hub.KerasLayer(handle, trainable=True, name="encoder")
        pooled = encoder(inputs)["pooled_output"]
        x = keras.layers.Dropout(self.config.dropout)(pooled)
        logit = self.logit_layer()(x)
        return keras.Model(inputs, logit, name="hub_classifier")

    @classmethod
    def custom_objects(cls) -> dict:
        return {"KerasLayer": hub.KerasLayer}
