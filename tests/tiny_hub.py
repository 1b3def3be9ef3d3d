"""Tiny TF Hub-format SavedModels, built by the tests: a BERT preprocessor (tensorflow-text
BertTokenizer on a tiny vocab, exposing tokenize and bert_pack_inputs) and an encoder following
the Reusable SavedModel API (input_word_ids/input_mask/input_type_ids → pooled/sequence_output)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tensorflow_text as text  # noqa: E402
import tf_keras as keras  # noqa: E402

from tests.tiny_imdb import NEGATIVE, NEUTRAL, POSITIVE  # noqa: E402

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class Tokenize(tf.Module):
    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        return self.tokenizer.tokenize(texts)


class PackInputs(tf.Module):
    def __init__(self, cls_id: int, sep_id: int):
        super().__init__()
        self.cls_id, self.sep_id = cls_id, sep_id

    @tf.function(input_signature=[[tf.RaggedTensorSpec([None, None, None], tf.int64)],
                                  tf.TensorSpec([], tf.int32)])
    def __call__(self, segments, seq_length):
        flat = [s.merge_dims(-2, -1) for s in segments]
        trimmed = text.RoundRobinTrimmer(max_seq_length=seq_length - 2).trim(flat)
        ids, type_ids = text.combine_segments(trimmed, start_of_sequence_id=self.cls_id, end_of_segment_id=self.sep_id)
        word_ids, mask = text.pad_model_inputs(ids, max_seq_length=seq_length)
        type_ids, _ = text.pad_model_inputs(type_ids, max_seq_length=seq_length)
        return {"input_word_ids": tf.cast(word_ids, tf.int32), "input_mask": tf.cast(mask, tf.int32),
                "input_type_ids": tf.cast(type_ids, tf.int32)}


class Preprocessor(tf.Module):
    def __init__(self, vocab_file: str, lower_case: bool = True):
        super().__init__()
        vocab = Path(vocab_file).read_text().split("\n")
        self.tokenizer = text.BertTokenizer(vocab_file, lower_case=lower_case, token_out_type=tf.int64)
        self.tokenize = Tokenize(self.tokenizer)
        self.bert_pack_inputs = PackInputs(vocab.index("[CLS]"), vocab.index("[SEP]"))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, texts):
        return self.bert_pack_inputs([self.tokenize(texts)], tf.constant(128))


def write_preprocessor(directory: Path, words: list[str] | None = None) -> Path:
    vocab = SPECIAL + sorted(set(words or POSITIVE + NEGATIVE + NEUTRAL)) + [".", ",", "!", "'"]
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory.parent / f"{directory.name}.vocab.txt"
    vocab_file.write_text("\n".join(vocab))
    tf.saved_model.save(Preprocessor(str(vocab_file)), str(directory))
    return directory


def write_encoder(directory: Path, vocab_size: int = 64, hidden: int = 8) -> Path:
    """A few hundred parameters: embedding → masked mean → dense tanh as pooled_output."""
    names = ("input_word_ids", "input_mask", "input_type_ids")
    inputs = {n: keras.Input(shape=(None,), dtype=tf.int32, name=n) for n in names}
    sequence = keras.layers.Embedding(vocab_size, hidden, name="word_embeddings")(inputs["input_word_ids"])
    mask = tf.cast(inputs["input_mask"], tf.float32)[..., None]
    mean = tf.reduce_sum(sequence * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
    pooled = keras.layers.Dense(hidden, activation="tanh", name="pooler")(mean)
    model = keras.Model(inputs, {"pooled_output": pooled, "sequence_output": sequence})
    model.save(str(directory), save_format="tf", include_optimizer=False)
    return directory
