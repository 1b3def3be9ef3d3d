"""What a name says: a table's file name ends with one of these (before an optional .gz), anything else
(a .tar.gz, a directory) is the aclImdb archive — read by params (`data.format: auto`) and the table
reader (`data.table_format: auto`) alike; and what a model's name may be (params, the registry)."""

from __future__ import annotations

import re
from pathlib import Path

# A model's name becomes a DVC stage (`tune@<name>`), a path (`models/<name>`) and an argument of a
# command DVC's shell runs: a letter, then letters, digits and underscores, so it can be none of the
# shell's, YAML's or a path's special characters.
MODEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
                 ".jsonl": "jsonl", ".ndjson": "jsonl"}


def table_suffix(source: str) -> str | None:
    """The table format a source's name ends with (a URL's query string aside), or None."""
    suffixes = Path(source.split("?", 1)[0].split("#", 1)[0]).suffixes
    for suffix in reversed(suffixes):
        if suffix.lower() in TABLE_FORMATS:
            return TABLE_FORMATS[suffix.lower()]
        if suffix.lower() != ".gz":
            return None
    return None
