"""Write TF Hub-format SavedModels: a BERT preprocessor and a BERT encoder.

`convert_bert` turns a local Hugging Face BERT-family checkpoint (config.json, model.safetensors,
vocab.txt) into the pair that `hub_encoder` models take as handles, for machines that cannot reach
TF Hub. The preprocessor exposes `tokenize` and `bert_pack_inputs` like TF Hub's preprocessors; the
encoder follows the Reusable SavedModel API (input_word_ids/input_mask/input_type_ids →
pooled_output/sequence_output). Weights are read with safetensors' numpy API: no PyTorch needed.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_text as text
import tf_keras as keras

from imdbclf.errors import UserError

INPUTS = ("input_word_ids", "input_mask", "input_type_ids")


# ---------------------------------------------------------------- preprocessor


class Tokenize(tf.Module):
    def __init__(self, tokenizer: text.BertTokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        return self.tokenizer.tokenize(texts)


class PackInputs(tf.Module):
    """[CLS] segment [SEP] (round-robin trimmed), padded to seq_length."""

    def __init__(self, cls_id: int, sep_id: int):
        super().__init__()
        self.cls_id, self.sep_id = cls_id, sep_id

    @tf.function(input_signature=[[tf.RaggedTensorSpec([None, None, None], tf.int64)], tf.TensorSpec([], tf.int32)])
    def __call__(self, segments, seq_length):
        flat = [s.merge_dims(-2, -1) for s in segments]
        trimmed = text.RoundRobinTrimmer(max_seq_length=seq_length - 2).trim(flat)
        ids, type_ids = text.combine_segments(trimmed, start_of_sequence_id=self.cls_id, end_of_segment_id=self.sep_id)
        word_ids, mask = text.pad_model_inputs(ids, max_seq_length=seq_length)
        type_ids, _ = text.pad_model_inputs(type_ids, max_seq_length=seq_length)
        return {"input_word_ids": tf.cast(word_ids, tf.int32), "input_mask": tf.cast(mask, tf.int32),
                "input_type_ids": tf.cast(type_ids, tf.int32)}


class Preprocessor(tf.Module):
    def __init__(self, vocab_file: Path, lower_case: bool = True, default_seq_length: int = 128):
        super().__init__()
        vocab = Path(vocab_file).read_text(encoding="utf-8").splitlines()
        self.tokenizer = text.BertTokenizer(str(vocab_file), lower_case=lower_case, token_out_type=tf.int64)
        self.tokenize = Tokenize(self.tokenizer)
        self.bert_pack_inputs = PackInputs(vocab.index("[CLS]"), vocab.index("[SEP]"))
        self.default_seq_length = default_seq_length

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        return self.bert_pack_inputs([self.tokenize(texts)], tf.constant(self.default_seq_length))


def save_preprocessor(vocab: list[str], directory: Path, lower_case: bool = True) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tf.saved_model.save(Preprocessor(vocab_file, lower_case), str(directory))
    return directory


# ---------------------------------------------------------------- encoder


def gelu(x: tf.Tensor) -> tf.Tensor:
    """The exact (erf) GELU of BERT's `hidden_act: gelu`."""
    return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


class BertEmbeddings(keras.layers.Layer):
    def __init__(self, vocab_size, hidden, max_positions, type_vocab_size, eps, **kwargs):
        super().__init__(**kwargs)
        self.word = keras.layers.Embedding(vocab_size, hidden, name="word_embeddings")
        self.position = keras.layers.Embedding(max_positions, hidden, name="position_embeddings")
        self.token_type = keras.layers.Embedding(type_vocab_size, hidden, name="token_type_embeddings")
        self.norm = keras.layers.LayerNormalization(epsilon=eps, name="LayerNorm")

    def call(self, word_ids, type_ids):
        positions = tf.range(tf.shape(word_ids)[1])[None, :]
        return self.norm(self.word(word_ids) + self.position(positions) + self.token_type(type_ids))


class BertLayer(keras.layers.Layer):
    """Self-attention + feed-forward, post-LayerNorm, as in the original BERT."""

    def __init__(self, hidden, heads, intermediate, eps, dropout, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.head_dim = heads, hidden // heads
        self.query = keras.layers.Dense(hidden, name="query")
        self.key = keras.layers.Dense(hidden, name="key")
        self.value = keras.layers.Dense(hidden, name="value")
        self.attention_output = keras.layers.Dense(hidden, name="attention_output")
        self.attention_norm = keras.layers.LayerNormalization(epsilon=eps, name="attention_LayerNorm")
        self.intermediate = keras.layers.Dense(intermediate, name="intermediate")
        self.output_dense = keras.layers.Dense(hidden, name="output")
        self.output_norm = keras.layers.LayerNormalization(epsilon=eps, name="output_LayerNorm")
        self.dropout = keras.layers.Dropout(dropout)

    def _split(self, x):
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        return tf.transpose(tf.reshape(x, [batch, length, self.heads, self.head_dim]), [0, 2, 1, 3])

    def call(self, x, mask, training=None):
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(self.head_dim)
        scores += (1.0 - tf.cast(mask, scores.dtype))[:, None, None, :] * scores.dtype.min
        weights = self.dropout(tf.nn.softmax(scores, axis=-1), training=training)
        context = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])
        context = tf.reshape(context, tf.shape(x))
        x = self.attention_norm(x + self.dropout(self.attention_output(context), training=training))
        hidden = self.output_dense(gelu(self.intermediate(x)))
        return self.output_norm(x + self.dropout(hidden, training=training))


def build_bert_encoder(config: dict) -> keras.Model:
    hidden = config["hidden_size"]
    eps = config.get("layer_norm_eps", 1e-12)
    dropout = config.get("hidden_dropout_prob", 0.1)
    inputs = {name: keras.Input(shape=(None,), dtype=tf.int32, name=name) for name in INPUTS}
    x = BertEmbeddings(config["vocab_size"], hidden, config["max_position_embeddings"],
                       config.get("type_vocab_size", 2), eps, name="embeddings")(
        inputs["input_word_ids"], inputs["input_type_ids"])
    for i in range(config["num_hidden_layers"]):
        x = BertLayer(hidden, config["num_attention_heads"], config["intermediate_size"], eps, dropout,
                      name=f"layer_{i}")(x, inputs["input_mask"])
    pooled = keras.layers.Dense(hidden, activation="tanh", name="pooler")(x[:, 0, :])
    return keras.Model(inputs, {"pooled_output": pooled, "sequence_output": x}, name="bert_encoder")


def load_hf_weights(model: keras.Model, weights: dict[str, np.ndarray], config: dict) -> None:
    """Copy a Hugging Face BertModel state dict (numpy) into `build_bert_encoder`'s layers."""
    weights = {k.removeprefix("bert."): v for k, v in weights.items()}

    def get(name: str) -> np.ndarray:
        if name not in weights:
            raise UserError(f"model.safetensors: missing weight '{name}' (not a BERT-family checkpoint?)")
        return weights[name]

    def dense(layer, prefix):
        layer.set_weights([get(f"{prefix}.weight").T, get(f"{prefix}.bias")])

    def norm(layer, prefix):
        gamma = weights.get(f"{prefix}.weight", weights.get(f"{prefix}.gamma"))
        beta = weights.get(f"{prefix}.bias", weights.get(f"{prefix}.beta"))
        if gamma is None or beta is None:
            raise UserError(f"model.safetensors: missing weight '{prefix}.weight'")
        layer.set_weights([gamma, beta])

    emb = model.get_layer("embeddings")
    emb.word.set_weights([get("embeddings.word_embeddings.weight")])
    emb.position.set_weights([get("embeddings.position_embeddings.weight")])
    emb.token_type.set_weights([get("embeddings.token_type_embeddings.weight")])
    norm(emb.norm, "embeddings.LayerNorm")
    for i in range(config["num_hidden_layers"]):
        layer, p = model.get_layer(f"layer_{i}"), f"encoder.layer.{i}"
        dense(layer.query, f"{p}.attention.self.query")
        dense(layer.key, f"{p}.attention.self.key")
        dense(layer.value, f"{p}.attention.self.value")
        dense(layer.attention_output, f"{p}.attention.output.dense")
        norm(layer.attention_norm, f"{p}.attention.output.LayerNorm")
        dense(layer.intermediate, f"{p}.intermediate.dense")
        dense(layer.output_dense, f"{p}.output.dense")
        norm(layer.output_norm, f"{p}.output.LayerNorm")
    dense(model.get_layer("pooler"), "pooler.dense")


def save_encoder(model: keras.Model, directory: Path) -> Path:
    model.save(str(directory), save_format="tf", include_optimizer=False)
    return directory


# ---------------------------------------------------------------- conversion


def read_checkpoint(hf_dir: Path) -> tuple[dict, dict[str, np.ndarray], list[str], bool]:
    from safetensors.numpy import load_file

    for name in ("config.json", "model.safetensors", "vocab.txt"):
        if not (hf_dir / name).exists():
            raise UserError(f"{hf_dir}: no {name} (expected a Hugging Face BERT-family checkpoint directory)")
    config = json.loads((hf_dir / "config.json").read_text())
    if config.get("model_type", "bert") != "bert" or config.get("hidden_act", "gelu") != "gelu":
        raise UserError(f"{hf_dir / 'config.json'}: model_type {config.get('model_type')!r} with hidden_act "
                        f"{config.get('hidden_act')!r} is not supported (BERT with gelu is)")
    lower_case = config.get("do_lower_case", True)
    tokenizer_config = hf_dir / "tokenizer_config.json"
    if tokenizer_config.exists():
        lower_case = json.loads(tokenizer_config.read_text()).get("do_lower_case", lower_case)
    vocab = (hf_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    return config, load_file(str(hf_dir / "model.safetensors")), vocab, lower_case


def convert_bert(hf_dir: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write out_dir/preprocessor and out_dir/encoder; nothing is left behind on failure."""
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    config, weights, vocab, lower_case = read_checkpoint(hf_dir)
    model = build_bert_encoder(config)
    load_hf_weights(model, weights, config)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    try:
        save_preprocessor(vocab, staging / "preprocessor", lower_case)
        save_encoder(model, staging / "encoder")
        (staging / "config.json").write_text(json.dumps({**config, "do_lower_case": lower_case}, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / "preprocessor", out_dir / "encoder"
