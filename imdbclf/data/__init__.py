"""Data: a source (the aclImdb archive) → data/raw → splits (stratified, grouped by movie) → parquet."""

from imdbclf.data.aclimdb import CLASSES, fetch, read_reviews
from imdbclf.data.archive import Limits, decode_utf8
from imdbclf.data.download import sha256_of, shown
from imdbclf.data.splits import Split, load_split, split_train_val, stratified_indices, stratified_sample
from imdbclf.data.stats import split_stats

__all__ = ["CLASSES", "Limits", "Split", "decode_utf8", "fetch", "load_split", "read_reviews", "sha256_of", "shown",
           "split_stats", "split_train_val", "stratified_indices", "stratified_sample"]
