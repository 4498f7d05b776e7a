"""Catalog files: CSV, JSONL or Parquet with a ``cover_url`` column; other columns pass through.

:func:`iter_catalog` streams a catalog in chunks of exactly ``chunk_rows`` rows (the last may be
shorter), so memory does not grow with the file, and chunk ``i`` always holds the same rows of an
unchanged file: the nightly job's shards are built on that.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from scorer.errors import InputNotFound, UsageError
from scorer.sources.rows import ROW_ERROR, csv_tables, jsonl_tables, parquet_tables
from scorer.sources.text import Encoding, file_encoding

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".parquet": "parquet", ".pq": "parquet"}
URL_COLUMN = "cover_url"
#: Output columns the scorer writes; an input column with one of these names would be overwritten.
RESERVED_PREFIX = "p_"


def catalog_format(path: Path) -> str:
    """``csv``, ``jsonl`` or ``parquet`` for an existing catalog file; :class:`UsageError` otherwise."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"{path}: unknown catalog format {path.suffix!r}; use .csv, .jsonl or .parquet")
    if not path.is_file():
        raise InputNotFound(f"{path}: no such file", str(path))
    return fmt


def text_encoding(path: Path, encoding: str | Encoding | None = None) -> str:
    """The codec a CSV or JSONL catalog is read with: ``encoding`` if given (checked against the whole
    file), else detected (:mod:`scorer.sources.text`); :class:`UsageError` when it cannot be read."""
    return file_encoding(Path(path), encoding).name


def read_catalog(path: Path, encoding: str | Encoding | None = None) -> pa.Table:
    """Read the whole catalog (with :data:`~scorer.sources.rows.ROW_ERROR` marking broken rows);
    :class:`UsageError` for a file we cannot read at all."""
    _, chunks = iter_catalog(path, 1 << 20, encoding)
    return pa.concat_tables(list(chunks))


def iter_catalog(path: Path, chunk_rows: int = 10_000, encoding: str | Encoding | None = None,
                 url_col: str = URL_COLUMN) -> tuple[pa.Schema, Iterator[pa.Table]]:
    """The catalog's schema, and its rows as tables of ``chunk_rows`` (with the hidden column
    :data:`~scorer.sources.rows.ROW_ERROR` besides its own). The header (and first chunk)
    are read and checked at once, so a file that cannot be read at all fails before any work with a
    :class:`UsageError`; a broken row further on is a row of its own (:mod:`scorer.sources.rows`).
    ``encoding``: see :func:`text_encoding`; ``url_col``: the column of covers."""
    path = Path(path)
    fmt = catalog_format(path)
    try:
        if fmt == "parquet":
            batches = parquet_tables(path, chunk_rows)
        else:
            codec = text_encoding(path, encoding)
            codec = "utf-8-sig" if codec == "utf-8" else codec  # a byte-order mark is not part of the first name
            batches = (csv_tables if fmt == "csv" else jsonl_tables)(path, codec, chunk_rows)
        chunks = _rechunk(batches, chunk_rows)
        first = next(chunks, None)
        if first is None:
            raise UsageError(f"{path}: no rows and no columns")
    except (pa.ArrowException, OSError) as e:
        raise UsageError(f"{path}: not a valid {fmt.upper()} catalog: {str(e).splitlines()[0][:300]}") from e
    errors = first.column(ROW_ERROR)
    if first.num_rows and errors.null_count == 0:
        raise UsageError(f"{path}: not one row of the first {first.num_rows} can be read as {fmt.upper()} "
                         f"(first: {errors[0].as_py()})")
    first = _checked(first, path, url_col)
    rest = (_checked(t, path, url_col) for t in chunks)
    schema = first.schema.remove(first.schema.get_field_index(ROW_ERROR))  # the catalog's own columns
    return schema, itertools.chain([first], rest)


def _checked(table: pa.Table, path: Path, url_col: str = URL_COLUMN) -> pa.Table:
    """``table`` with a text ``url_col`` (an all-empty column becomes text: its rows are ``missing_url``)."""
    if url_col not in table.column_names:
        found = [c for c in table.column_names if c != ROW_ERROR]
        raise UsageError(f"{path}: no {url_col!r} column (found: {', '.join(found) or 'none'}); "
                         f"each row needs a {url_col} with an http(s) URL or a local path")
    url_type = table.schema.field(url_col).type
    if pa.types.is_null(url_type) or pa.types.is_large_string(url_type):
        return table.set_column(table.column_names.index(url_col), url_col, table.column(url_col).cast(pa.string()))
    if not pa.types.is_string(url_type) and table.num_rows:
        raise UsageError(f"{path}: {url_col!r} must hold text (URLs or paths)")
    return table


def _rechunk(batches: Iterable[pa.RecordBatch | pa.Table], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``rows`` rows (the last one shorter) from batches of any size."""
    pending: list[pa.Table] = []
    have = 0
    empty: pa.Table | None = None  # an empty catalog yields one empty table, for its schema
    gave = False
    for b in batches:
        t = b if isinstance(b, pa.Table) else pa.Table.from_batches([b])
        empty = empty if empty is not None else t.slice(0, 0)
        pending.append(t)
        have += t.num_rows
        while have >= rows:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, rows).combine_chunks()
            gave = True
            rest = whole.slice(rows)
            pending, have = ([rest] if rest.num_rows else []), rest.num_rows
    if have:
        yield pa.concat_tables(pending).combine_chunks()
    elif not gave and empty is not None:
        yield empty
