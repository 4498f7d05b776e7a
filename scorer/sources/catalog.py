"""Catalog files: CSV, JSONL or Parquet with a ``cover_url`` column; other columns pass through."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..filters import UsageError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".parquet": "parquet", ".pq": "parquet"}
URL_COLUMN = "cover_url"
#: Output columns the scorer writes; an input column with one of these names would be overwritten.
RESERVED_PREFIX = "p_"


def read_catalog(path: Path) -> pa.Table:
    """Read the whole catalog; raise :class:`UsageError` for anything we cannot score."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"{path}: unknown catalog format {path.suffix!r}; use .csv, .jsonl or .parquet")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        if fmt == "csv":
            from pyarrow import csv

            # Every column as text: ids like 007 keep their zeros, and types never surprise.
            table = csv.read_csv(path, convert_options=csv.ConvertOptions(
                column_types=dict.fromkeys(_csv_header(path), pa.string()), strings_can_be_null=False))
        elif fmt == "jsonl":
            from pyarrow import json

            table = json.read_json(path)
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
    except pa.ArrowInvalid as e:
        raise UsageError(f"{path}: not a valid {fmt.upper()} catalog: {e}") from e
    if URL_COLUMN not in table.column_names:
        raise UsageError(f"{path}: no {URL_COLUMN!r} column (found: {', '.join(table.column_names) or 'none'}); "
                         f"each row needs a cover_url with an http(s) URL or a local path")
    url_type = table.schema.field(URL_COLUMN).type
    if pa.types.is_null(url_type):  # every value empty: rows become missing_url
        table = table.set_column(table.column_names.index(URL_COLUMN), URL_COLUMN,
                                 table.column(URL_COLUMN).cast(pa.string()))
    elif not (pa.types.is_string(url_type) or pa.types.is_large_string(url_type)) and table.num_rows:
        raise UsageError(f"{path}: {URL_COLUMN!r} must hold text (URLs or paths)")
    return table


def _csv_header(path: Path) -> list[str]:
    import csv

    with open(path, newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f), [])
