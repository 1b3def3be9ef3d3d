"""A table of labelled texts (CSV, TSV, Parquet or JSON Lines; a local path or an http(s) URL, such as a
Hugging Face Hub dataset's parquet file) → data/raw/{train,test}.parquet with the columns every source
yields: id, text, label (as in the table), group (None without a group column).

A table that cannot serve stops here in one line naming the file and the column or row: a missing
column, an empty text or label, labels of mixed types, a file that is not what its name says."""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import tempfile
import zlib
from pathlib import Path

import pandas as pd

from imdbclf import atomic
from imdbclf.data.archive import MB, Limits
from imdbclf.data.download import download, is_url, redact_url
from imdbclf.errors import UserError
from imdbclf.formats import table_suffix
from imdbclf.settings.pipeline import DataParams

COLUMNS = ("id", "text", "label", "group")
# A compressed table is recognised by its first bytes (a downloaded copy has no name to go by) and
# unpacked here, its bytes counted as they come, so that data.max_unpacked_mb bounds what it holds.
UNPACKERS = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}
NOT_UNPACKED = {b"PK\x03\x04": "zip", b"\x28\xb5\x2f\xfd": "zstd"}


def table_format(source: str, setting: str) -> str:
    """`data.table_format`, or what the source's name ends with (a URL's query string aside)."""
    if setting != "auto":
        return setting
    if found := table_suffix(source):
        return found
    raise UserError(f"data.source: {redact_url(source)}: cannot tell the table's format from its name: set "
                    f"data.table_format to csv, tsv, parquet or jsonl")


def unpacked(path: Path, tmp: Path, limits: Limits, name: str) -> Path:
    """`path` itself, or, for a gzip, bzip2 or xz file, its contents in `tmp`: stopped in one line as soon
    as they pass data.max_unpacked_mb (a 1 MB .csv.gz can hold a gigabyte)."""
    with open(path, "rb") as f:
        head = f.read(6)
    if kind := next((k for magic, k in NOT_UNPACKED.items() if head.startswith(magic)), None):
        raise UserError(f"{name}: a {kind} file: unpack it first, or compress the table with gzip")
    opener = next((o for magic, o in UNPACKERS.items() if head.startswith(magic)), None)
    if opener is None:
        return path
    out, total, limit = tmp / "unpacked", 0, limits.unpacked_mb * MB if limits.unpacked_mb else None
    try:
        with opener(path, "rb") as source, open(out, "wb") as dest:
            while chunk := source.read(MB):
                dest.write(chunk)
                total += len(chunk)
                if limit and total > limit:
                    raise UserError(f"{name}: unpacks to more than data.max_unpacked_mb ({limits.unpacked_mb:g})")
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as err:
        raise UserError(f"{name}: not a readable compressed file ({one_reason(err)})") from None
    return out


def one_reason(err: BaseException) -> str:
    return str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__


def expanded_bytes(table) -> int:
    """The bytes a pyarrow table's columns hold once every value is its own: a dictionary-encoded
    column (a 1 MB text repeated a thousand times is stored once) counts each row's value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for column in table.columns:
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type) and is_text_type(chunk.type.value_type):
                lengths = pc.binary_length(chunk.dictionary).take(chunk.indices)
                total += int(pc.sum(lengths).as_py() or 0) + 4 * len(chunk)
            else:
                total += chunk.nbytes
    return total


def is_text_type(arrow_type) -> bool:
    """A string or bytes type of any width: what is read dictionary-encoded and counted per row."""
    import pyarrow as pa

    kinds = [pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary,
             getattr(pa.types, "is_string_view", lambda t: False), getattr(pa.types, "is_binary_view", lambda t: False)]
    return any(kind(arrow_type) for kind in kinds)


def text_columns(schema) -> list[str]:
    return [f.name for f in schema if is_text_type(f.type)]


def _parquet(path: Path, columns: list[str], limits: Limits, name: str) -> pd.DataFrame:
    """The given columns of a Parquet file (those it has), refused in one line when they are nested (a
    struct or list where a text belongs) or unpack to more than data.max_unpacked_mb: declared in its
    footer, and counted again row group by row group, texts kept dictionary-encoded until the whole is
    known to fit (a repeated text is stored once in the file and would be copied per row)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path, read_dictionary=[c for c in text_columns(pq.read_schema(path)) if c in columns])
    schema = parquet.schema_arrow
    present = [c for c in columns if c in schema.names]
    for column in present:
        if pa.types.is_nested(schema.field(column).type):
            raise UserError(f"{name}: column '{column}' is nested ({schema.field(column).type}): "
                            "texts, labels, groups and ids must be plain values")
    limit = limits.unpacked_mb * MB if limits.unpacked_mb else None
    meta = parquet.metadata
    leaves = [j for j in range(meta.num_columns) if meta.schema.column(j).path.split(".")[0] in present]
    declared = sum(meta.row_group(i).column(j).total_uncompressed_size
                   for i in range(meta.num_row_groups) for j in leaves)
    declared += meta.num_rows * 8 * len(present)  # each row's offsets and indices, however it is encoded
    too_big = UserError(f"{name}: its columns unpack to more than data.max_unpacked_mb ({limits.unpacked_mb:g})")
    if limit and declared > limit:
        raise too_big
    groups, read = [], 0
    for i in range(meta.num_row_groups):
        groups.append(parquet.read_row_group(i, columns=present))
        read += expanded_bytes(groups[-1])
        if limit and read > limit:
            raise too_big
    table = pa.concat_tables(groups) if groups else schema.empty_table().select(present)
    table = table.cast(pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                                  for f in table.schema]))
    frame = table.to_pandas()
    frame.attrs["columns"] = list(schema.names)  # what a missing column's error lists
    return frame


def read_table(path: Path, fmt: str, name: str, columns: list[str] | None = None,
               limits: Limits | None = None) -> pd.DataFrame:
    """The table's columns as read (CSV and TSV: strings, empty cells None); Parquet: `columns` only."""
    try:
        if fmt == "parquet":
            return _parquet(path, columns or [], limits or Limits(), name)
        if fmt == "jsonl":
            return pd.read_json(path, lines=True, dtype=False, compression=None)
        return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False,
                           na_values=[""], encoding="utf-8", compression=None)
    except UserError:
        raise
    except UnicodeDecodeError as err:
        raise UserError(f"{name}: not UTF-8 text (byte {err.start}): save the table as UTF-8") from None
    except Exception as err:  # noqa: BLE001 - pandas and pyarrow fail on a bad file in many types
        reason = one_reason(err)
        raise UserError(f"{name}: not a readable {fmt} table ({reason})") from None


def _column(frame: pd.DataFrame, column: str | None, key: str, name: str) -> pd.Series | None:
    if column is None:
        return None
    if column not in frame.columns:
        names = frame.attrs.get("columns", list(frame.columns))
        shown_columns = ", ".join(map(str, names[:20])) + (", ..." if len(names) > 20 else "")
        raise UserError(f"{name}: no column '{column}' ({key}); its columns: {shown_columns}")
    values = frame[column]
    if values.dtype == object and (nested := values.map(lambda v: isinstance(v, (dict, list, tuple)))).any():
        row = int(nested.to_numpy().argmax())
        raise UserError(f"{name}: row {row + 1}: column '{column}' ({key}) holds a nested "
                        f"{type(values.iloc[row]).__name__}, not a plain value")
    return values


def _first_bad(values: pd.Series) -> int | None:
    bad = values.isna() | values.astype(str).str.strip().eq("")
    return int(bad.to_numpy().argmax()) if bad.any() else None


def labels_of(values: pd.Series, column: str, name: str) -> pd.Series:
    """The label column as one type: integers where every label is one (`7`, `7.0` or "7"), else strings;
    a table mixing numbers and words (e.g. 1, 2, "three") is a mistake, not three classes."""
    if (row := _first_bad(values)) is not None:
        raise UserError(f"{name}: row {row + 1}: empty label in column '{column}'")
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        whole = (numbers == numbers.round()).all()
        return numbers.astype("int64") if whole else values.astype(str)
    if numbers.notna().any():
        row = int(numbers.isna().to_numpy().argmax())
        raise UserError(f"{name}: column '{column}' mixes label types: row {row + 1} is {values.iloc[row]!r}, "
                        f"others are numbers (e.g. {values[numbers.notna()].iloc[0]!r})")
    return values.astype(str)


def standard_frame(frame: pd.DataFrame, p: DataParams, name: str, limits: Limits) -> pd.DataFrame:
    """id, text, label, group from the table's columns (`p`: params.yaml's `data:`)."""
    texts = _column(frame, p.text_column, "data.text_column", name)
    labels = _column(frame, p.label_column, "data.label_column", name)
    groups = _column(frame, p.group_column, "data.group_column", name)
    ids = _column(frame, p.id_column, "data.id_column", name)
    if len(frame) == 0:
        raise UserError(f"{name}: the table has no rows")
    if (row := _first_bad(texts)) is not None:
        raise UserError(f"{name}: row {row + 1}: empty text in column '{p.text_column}'")
    texts = texts.astype(str)
    if limits.text_chars and (too_long := texts.str.len() > limits.text_chars).any():
        row = int(too_long.to_numpy().argmax())
        raise UserError(f"{name}: row {row + 1}: a text of {len(texts.iloc[row]):,} characters, more than "
                        f"data.max_text_chars ({limits.text_chars:,})")
    if groups is not None and (row := _first_bad(groups)) is not None:
        raise UserError(f"{name}: row {row + 1}: empty group in column '{p.group_column}'")
    if ids is not None:
        if (row := _first_bad(ids)) is not None:
            raise UserError(f"{name}: row {row + 1}: empty id in column '{p.id_column}'")
        if (repeated := ids.astype(str).duplicated()).any():
            row = int(repeated.to_numpy().argmax())
            raise UserError(f"{name}: row {row + 1}: id {ids.iloc[row]!r} (column '{p.id_column}') is not unique")
    width = len(str(len(frame)))
    return pd.DataFrame({
        "id": ids.astype(str).to_numpy(dtype=object) if ids is not None
        else [f"row-{i:0{width}d}" for i in range(len(frame))],
        "text": texts.to_numpy(dtype=object),
        "label": labels_of(labels, p.label_column, name).to_numpy(),
        "group": groups.astype(str).to_numpy(dtype=object) if groups is not None else None,
    })


def _local_copy(source: str, tmp: Path, p: DataParams, limits: Limits) -> Path:
    if is_url(source):
        path = tmp / "table"
        download(source, path, p.timeout_s, limits.download_mb, limits.download_s, limits.download_min_kb_s,
                 limits.rate_window_s)
        return path
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"data.source: {source}: no such file" + (" (a directory: a table is one file)"
                                                                  if path.is_dir() else ""))
    if limits.unpacked_mb and path.stat().st_size > limits.unpacked_mb * MB:
        raise UserError(f"data.source: {source} is {path.stat().st_size / MB:,.0f} MB, more than "
                        f"data.max_unpacked_mb ({limits.unpacked_mb:g})")
    return path


def fetch_table(p: DataParams, out: Path, limits: Limits) -> int:
    """data.source (and data.test_source, when given) → out/train.parquet (and out/test.parquet),
    atomically; returns the number of rows."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    count = 0
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp_dir:
        tmp = Path(tmp_dir)
        staged = tmp / "table"
        staged.mkdir()
        for split, source in (("train", p.source), ("test", p.test_source)):
            if source is None:
                continue
            name = redact_url(source)
            path = unpacked(_local_copy(source, tmp, p, limits), tmp, limits, name)
            columns = [c for c in (p.text_column, p.label_column, p.group_column, p.id_column) if c]
            table = read_table(path, table_format(source, p.table_format), name, columns, limits)
            frame = standard_frame(table, p, name, limits)
            atomic.write_parquet(frame, staged / f"{split}.parquet")
            count += len(frame)
            for temporary in tmp.glob("*"):
                if temporary.is_file():
                    temporary.unlink()
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)
    return count


def read_fetched(raw: Path, split: str) -> pd.DataFrame | None:
    """A split as fetch wrote it (None: the source has no separate table for it)."""
    path = Path(raw) / f"{split}.parquet"
    return pd.read_parquet(path) if path.exists() else None
