"""What a source's name says it is: a table's file name ends with one of these (before an optional .gz);
anything else (a .tar.gz, a directory) is the aclImdb archive. Read by params (`data.format: auto`) and
the table reader (`data.table_format: auto`) alike."""

from __future__ import annotations

from pathlib import Path

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
