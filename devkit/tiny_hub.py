"""Tiny TF Hub-format SavedModels, built by the tests with the package's own writers: a BERT
preprocessor (tensorflow-text BertTokenizer on a tiny vocab) and a 1-layer BERT encoder with a
few hundred parameters and random weights."""

from __future__ import annotations

from pathlib import Path

from imdbclf import environment

environment.use_legacy_keras()

from devkit.tiny_imdb import NEGATIVE, NEUTRAL, POSITIVE  # noqa: E402
from imdbclf.ops.bert_converter import build_bert_encoder, save_encoder, save_preprocessor  # noqa: E402

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIAL + sorted(set(POSITIVE + NEGATIVE + NEUTRAL)) + [".", ",", "!", "'", "<", ">", "/", "br"]
TINY_CONFIG = {"vocab_size": len(VOCAB), "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
               "intermediate_size": 16, "max_position_embeddings": 64, "type_vocab_size": 2,
               "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.0}


def write_preprocessor(directory: Path) -> Path:
    return save_preprocessor(VOCAB, directory, lower_case=True)


def write_encoder(directory: Path) -> Path:
    return save_encoder(build_bert_encoder(TINY_CONFIG), directory)
