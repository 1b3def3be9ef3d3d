"""Fitted n-gram vectorizers and their training matrices (or, streamed, the hashed chunks), kept for the
next trial of the same process.

Building the vocabulary is most of a linear family's fit (40 of 45 s for binary 1–3-grams on 20,000
reviews), and a grid that varies only the classifier's C would build the same one for every trial. A
fit is a pure function of the texts and the vectorizer's settings, so the result is looked up by both;
the matrix is returned too, which spares the history its second pass over the training reviews.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer

from imdbclf.families.streamed import HashedChunks

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

KEPT = 4  # fits kept (an ngram_max × C grid comes back to each vocabulary after the other n-gram sizes)
_fitted: OrderedDict[str, tuple[CountVectorizer, csr_matrix]] = OrderedDict()
_hashed: OrderedDict[str, HashedChunks] = OrderedDict()  # the streamed path's: one kept (each on disk)


def _key(vectorizer: CountVectorizer, texts: Sequence[str]) -> str:
    digest = hashlib.sha256(repr(sorted(vectorizer.get_params().items())).encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def fit_transform(vectorizer: CountVectorizer, texts: Sequence[str]) -> tuple[CountVectorizer, csr_matrix]:
    """`vectorizer` fitted on `texts` and the texts' matrix, or an identical earlier fit's (do not mutate
    either: a later trial may get the same objects)."""
    key = _key(vectorizer, texts)
    if key in _fitted:
        _fitted.move_to_end(key)
        return _fitted[key]
    matrix = vectorizer.fit_transform(texts).tocsr()
    _fitted[key] = (vectorizer, matrix)
    while len(_fitted) > KEPT:
        _fitted.popitem(last=False)
    return vectorizer, matrix


def hashed(vectorizer: HashingVectorizer, texts: Sequence[str], chunk_texts: int) -> HashedChunks:
    """The texts hashed a chunk at a time onto disk (`streamed`), or the same texts' and settings' chunks
    that the last trial of this process hashed."""
    key = f"{_key(vectorizer, texts)}-{chunk_texts}"
    if key not in _hashed:
        _hashed.clear()  # its directory goes with it
        _hashed[key] = HashedChunks(vectorizer, texts, chunk_texts, "train")
    return _hashed[key]
