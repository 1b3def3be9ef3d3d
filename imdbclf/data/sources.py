"""Where the texts and labels come from (params.yaml's `data:`): the aclImdb archive or a table. Every
source is fetched into data/raw/ and read back as the same frames: id, text, label (as the source names
it), and the group (`movie` for IMDB, `group` for a table; None without one)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imdbclf.data import aclimdb, table
from imdbclf.data.archive import Limits
from imdbclf.settings.pipeline import DataParams


def fetch(p: DataParams, out: Path) -> int:
    """`p`: params.yaml's `data:`. The source's labelled texts into `out`, atomically; their count."""
    if p.format == "table":
        return table.fetch_table(p, out, Limits.of(p))
    return aclimdb.fetch_archive(p.source, out, p.sha256, p.timeout_s, Limits.of(p))


def read(raw: Path, p: DataParams, split: str, grouped: bool) -> pd.DataFrame | None:
    """One split of the fetched data (None: a table without a separate test table)."""
    if p.format == "table":
        return table.read_fetched(raw, split)
    return aclimdb.read_reviews(raw, split, movies_required=grouped, label=p.label)
