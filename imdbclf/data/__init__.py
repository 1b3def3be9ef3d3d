"""Data: a source (the aclImdb archive or a table) → data/raw → splits (stratified, grouped by the source's
groups) → parquet, with the class names the data use."""

from imdbclf.data import sources
from imdbclf.data.aclimdb import CLASSES, fetch_archive, read_reviews
from imdbclf.data.archive import Limits, decode_utf8
from imdbclf.data.download import redact_url, sha256_of
from imdbclf.data.splits import (
    BINARY,
    META,
    Split,
    class_counts,
    class_names,
    encode_labels,
    group_column,
    load_split,
    read_classes,
    read_train_counts,
    split_off,
    split_train_val,
    stratified_indices,
    stratified_sample,
)
from imdbclf.data.stats import split_stats

__all__ = ["BINARY", "CLASSES", "META", "Limits", "Split", "class_counts", "class_names", "decode_utf8",
           "encode_labels", "fetch_archive", "group_column", "load_split", "read_classes", "read_reviews",
           "read_train_counts", "redact_url", "sha256_of", "sources", "split_off", "split_stats", "split_train_val",
           "stratified_indices", "stratified_sample"]
