"""Catalog files: CSV, JSONL or Parquet with a ``cover_url`` column; other columns pass through.

:func:`iter_catalog` streams a catalog in chunks of exactly ``chunk_rows`` rows (the last may be
shorter), so memory does not grow with the file, and chunk ``i`` always holds the same rows of an
unchanged file: the nightly job's shards are built on that.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from ..filters import UsageError
from .text import file_encoding

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
        raise UsageError(f"{path}: no such file")
    return fmt


def text_encoding(path: Path, encoding: str | None = None) -> str:
    """The codec a CSV or JSONL catalog is read with: ``encoding`` if given (checked against the whole
    file), else detected (:mod:`scorer.sources.text`); :class:`UsageError` when it cannot be read."""
    return file_encoding(Path(path), encoding).name


def read_catalog(path: Path, encoding: str | None = None) -> pa.Table:
    """Read the whole catalog; raise :class:`UsageError` for anything we cannot score."""
    path = Path(path)
    fmt = catalog_format(path)
    codec = text_encoding(path, encoding) if fmt != "parquet" else None
    try:
        if fmt == "csv":
            from pyarrow import csv

            table = csv.read_csv(path, read_options=csv_read_options(codec),
                                 convert_options=csv_convert_options(path, codec))
        elif fmt == "jsonl":
            from pyarrow import json

            if codec in (None, "utf-8"):
                table = json.read_json(path)
            else:
                tables = list(_jsonl_batches(path, 1 << 62, codec))
                table = pa.concat_tables(tables) if tables else pa.table({})
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
    except pa.ArrowInvalid as e:
        raise UsageError(f"{path}: not a valid {fmt.upper()} catalog: {e}") from e
    return _checked(table, path)


_UTF8 = (None, "utf-8", "utf-8-sig")


def csv_read_options(codec: str | None = None, block_size: int | None = None):
    """Arrow reads UTF-8 (a byte-order mark included) itself; other codecs are transcoded."""
    from pyarrow import csv

    options = {"block_size": block_size} if block_size else {}
    return csv.ReadOptions(**options) if codec in _UTF8 else csv.ReadOptions(encoding=codec, **options)


def csv_convert_options(path: Path, codec: str | None = None):
    """Every column as text: ids like 007 keep their zeros, and types never surprise."""
    from pyarrow import csv

    return csv.ConvertOptions(column_types=dict.fromkeys(_csv_header(path, codec), pa.string()),
                              strings_can_be_null=False)


def _csv_header(path: Path, codec: str | None = None) -> list[str]:
    import csv

    with open(path, newline="", encoding="utf-8-sig" if codec in _UTF8 else codec) as f:
        return next(csv.reader(f), [])


def iter_catalog(path: Path, chunk_rows: int = 10_000, encoding: str | None = None
                 ) -> tuple[pa.Schema, Iterator[pa.Table]]:
    """The catalog's schema, and its rows as tables of ``chunk_rows``. The header (and first chunk)
    are read and checked at once, so a bad file fails before any work; :class:`UsageError` as
    :func:`read_catalog`. ``encoding``: see :func:`text_encoding`."""
    path = Path(path)
    fmt = catalog_format(path)
    codec = text_encoding(path, encoding) if fmt != "parquet" else None
    try:
        if fmt == "csv":
            batches = _csv_batches(path, codec)
        elif fmt == "jsonl":
            batches = _jsonl_batches(path, chunk_rows, codec)
        else:
            import pyarrow.parquet as pq

            batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
        chunks = _rechunk(batches, chunk_rows)
        first = next(chunks, None)
    except pa.ArrowInvalid as e:
        raise UsageError(f"{path}: not a valid {fmt.upper()} catalog: {e}") from e
    if first is None:
        first = read_catalog(path, codec).slice(0, 0)  # an empty catalog: its schema from the whole-file reader
    first = _checked(first, path)
    rest = (_checked(t, path) for t in chunks)
    return first.schema, itertools.chain([first], _guard(rest, path, fmt))


def _checked(table: pa.Table, path: Path) -> pa.Table:
    """``table`` with a text ``cover_url`` (an all-empty column becomes text: its rows are ``missing_url``)."""
    if URL_COLUMN not in table.column_names:
        raise UsageError(f"{path}: no {URL_COLUMN!r} column (found: {', '.join(table.column_names) or 'none'}); "
                         f"each row needs a cover_url with an http(s) URL or a local path")
    url_type = table.schema.field(URL_COLUMN).type
    if pa.types.is_null(url_type) or pa.types.is_large_string(url_type):
        return table.set_column(table.column_names.index(URL_COLUMN), URL_COLUMN,
                                table.column(URL_COLUMN).cast(pa.string()))
    if not pa.types.is_string(url_type) and table.num_rows:
        raise UsageError(f"{path}: {URL_COLUMN!r} must hold text (URLs or paths)")
    return table


def _guard(chunks: Iterator[pa.Table], path: Path, fmt: str) -> Iterator[pa.Table]:
    try:
        yield from chunks
    except pa.ArrowInvalid as e:  # a damaged row far into the file
        raise UsageError(f"{path}: not a valid {fmt.upper()} catalog further on: {e}") from e


def _csv_batches(path: Path, codec: str | None = None) -> Iterator[pa.RecordBatch]:
    from pyarrow import csv

    yield from csv.open_csv(path, read_options=csv_read_options(codec, 4 << 20),
                            convert_options=csv_convert_options(path, codec))


def _jsonl_batches(path: Path, lines_per_block: int, codec: str | None = None) -> Iterator[pa.Table]:
    """JSON Lines in blocks of lines; the first block's schema is the catalog's (later fields are dropped).
    A file in another codec than UTF-8 is read as text and handed to Arrow as UTF-8."""
    from pyarrow import json

    schema = None
    utf8 = codec in (None, "utf-8")  # "utf-8-sig" goes the text way, which drops the byte-order mark
    with (open(path, "rb") if utf8 else open(path, encoding=codec, newline="")) as f:
        while True:
            lines = list(itertools.islice(f, lines_per_block))
            block = b"".join(lines) if utf8 else "".join(lines).encode("utf-8")
            if not block.strip():
                if not block:
                    return
                continue
            options = json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore") if schema \
                else json.ParseOptions()
            table = json.read_json(io.BytesIO(block), parse_options=options)
            schema = schema or table.schema
            yield table


def _rechunk(batches: Iterable[pa.RecordBatch | pa.Table], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``rows`` rows (the last one shorter) from batches of any size."""
    pending: list[pa.Table] = []
    have = 0
    for b in batches:
        t = b if isinstance(b, pa.Table) else pa.Table.from_batches([b])
        pending.append(t)
        have += t.num_rows
        while have >= rows:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, rows).combine_chunks()
            rest = whole.slice(rows)
            pending, have = ([rest] if rest.num_rows else []), rest.num_rows
    if have:
        yield pa.concat_tables(pending).combine_chunks()
