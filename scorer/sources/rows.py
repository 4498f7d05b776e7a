"""Tolerant catalog readers: a line that cannot be parsed is a row of its own, not the end of the run.

Each reader yields Arrow tables with the catalog's columns plus :data:`ROW_ERROR`, which is null
for a good row and, for a broken one, says where and why (``line 5001: Expecting ',' delimiter``);
the scoring stage turns it into status ``bad_row`` and drops the column. So one input row (a CSV
record, a JSONL line, a Parquet row) always gives one output row, and line numbers are the file's.

- CSV: Python's csv module (strict quoting), every column text; a record whose field count differs
  from the header's, or whose quoting is broken, is bad. A quote left open swallows the rest of the
  file into one bad record, as in any CSV reader.
- JSON Lines: one ``json.loads`` per line. The columns and their types come from the first chunk's
  objects; a later value of another type (text in a number column) makes its line bad, later keys
  are ignored, and nested values are kept as JSON text.
- Parquet: row group by row group; a damaged group's rows are bad rows with its error.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from scorer.errors import UsageError

ROW_ERROR = "__scorer_row_error__"
MAX_FIELD = 16 << 20  # a CSV field over this (a binary file read as text, say) makes its record bad


def _table(columns: list[str], types: dict[str, pa.DataType], rows: list[dict | None], errors: list[str | None]
           ) -> pa.Table:
    data = {c: pa.array([r.get(c) if r is not None else None for r in rows], types[c]) for c in columns}
    data[ROW_ERROR] = pa.array(errors, pa.string())
    return pa.table(data)


# ------------------------------------------------------------------------------------------ CSV
def csv_tables(path: Path, codec: str, chunk_rows: int) -> Iterator[pa.Table]:
    """``codec``: a Python codec (``utf-8-sig`` drops a byte-order mark)."""
    csv.field_size_limit(MAX_FIELD)
    with open(path, encoding=codec, newline="") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader, [])
        except csv.Error as e:
            raise UsageError(f"{path}: the header line cannot be read ({_csv_reason(e)})") from e
        if dupes := sorted({c for c in header if header.count(c) > 1}):
            raise UsageError(f"{path}: the header names {', '.join(map(repr, dupes))} more than once; "
                             "each column needs a name of its own")
        types = dict.fromkeys(header, pa.string())
        rows: list[dict | None] = []
        errors: list[str | None] = []
        yielded = False
        while True:
            start = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                rows.append(None)
                errors.append(f"line {start}: {_csv_reason(e)}")
            else:
                if not record:
                    continue  # a blank line is not a record
                if len(record) != len(header):
                    rows.append(None)
                    errors.append(f"line {start}: {len(record)} fields, the header has {len(header)}")
                else:
                    rows.append(dict(zip(header, record)))
                    errors.append(None)
            if len(rows) == chunk_rows:
                yield _table(header, types, rows, errors)
                rows, errors, yielded = [], [], True
        if rows or not yielded:  # an empty catalog is one empty table: its columns still tell the schema
            yield _table(header, types, rows, errors)


def _csv_reason(e: csv.Error) -> str:
    text = str(e)
    if "unexpected end of data" in text:
        return "a quote is never closed (the rest of the file was read as this one record)"
    if "field larger than field limit" in text:
        return f"a field over {MAX_FIELD >> 20} MB"
    return f"bad quoting ({text})"


# ------------------------------------------------------------------------------------------ JSON Lines
_TYPES = ((bool, pa.bool_(), "true or false"), (int, pa.int64(), "a whole number"),
          (float, pa.float64(), "a number"), (str, pa.string(), "text"))


def _kind(value: Any) -> tuple[pa.DataType, str] | None:
    for python, arrow, said in _TYPES:
        if type(value) is python:
            return arrow, said
    return None


def _said(value: Any) -> str:
    kind = _kind(value)
    if kind:
        return kind[1]
    return "a JSON array" if isinstance(value, list) else "a JSON object" if isinstance(value, dict) else "null"


def _fits(value: Any, arrow: pa.DataType) -> Any:
    """``value`` as the column's type; ValueError when it is not that type."""
    if value is None:
        return None
    if arrow == pa.string():
        if isinstance(value, str):
            return value
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False)
        raise ValueError
    if arrow == pa.float64() and type(value) in (int, float):
        return float(value)
    if arrow == pa.int64() and type(value) is int:
        return value
    if arrow == pa.bool_() and type(value) is bool:
        return value
    raise ValueError


#: how a message names the values a JSONL column holds
_SAID = {pa.string(): "text", pa.int64(): "whole numbers", pa.float64(): "numbers", pa.bool_(): "true or false"}


def jsonl_tables(path: Path, codec: str, chunk_rows: int) -> Iterator[pa.Table]:
    columns: list[str] | None = None
    types: dict[str, pa.DataType] = {}
    pending: list[tuple[int, Any, str | None]] = []  # (line, object or None, error)
    with open(path, encoding=codec, newline="") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            pending.append(_jsonl_line(number, line))
            if len(pending) == chunk_rows:
                columns = columns if columns is not None else _jsonl_columns(pending, types)
                yield _jsonl_table(pending, columns, types)
    if pending or columns is None:
        columns = columns if columns is not None else _jsonl_columns(pending, types)
        yield _jsonl_table(pending, columns, types)


def _jsonl_line(number: int, line: str) -> tuple[int, Any, str | None]:
    """``(line number, object or None, error)`` for one line of a JSONL file."""
    try:
        obj = json.loads(line.rstrip("\r\n"))  # positions in the line, not past its end
    except ValueError as e:
        return number, None, f"line {number}: not JSON ({_json_reason(e)})"
    if isinstance(obj, dict):
        return number, obj, None
    return number, None, f"line {number}: {_said(obj)}, not an object with a cover_url"


def _jsonl_columns(pending: list[tuple[int, Any, str | None]], types: dict[str, pa.DataType]) -> list[str]:
    """The first chunk names the columns, and the first value of each its type (into ``types``)."""
    columns: list[str] = []
    for _, obj, _ in pending:
        for key, value in (obj or {}).items():
            if key not in columns:
                columns.append(key)
            if key not in types and value is not None:
                kind = _kind(value)
                types[key] = kind[0] if kind else pa.string()
    for key in columns:
        types.setdefault(key, pa.string())
    return columns


def _jsonl_table(pending: list[tuple[int, Any, str | None]], columns: list[str],
                 types: dict[str, pa.DataType]) -> pa.Table:
    """The pending lines as a table (emptying ``pending``); a value that does not fit its column's type makes
    its line a bad row."""
    rows: list[dict | None] = []
    errors: list[str | None] = []
    for line, obj, parse_error in pending:
        row: dict | None = None
        error = parse_error
        if obj is not None:
            row = {}
            for c in columns:
                try:
                    row[c] = _fits(obj.get(c), types[c])
                except ValueError:
                    row, error = None, (f"line {line}: {c!r} is {_said(obj[c])}; the column holds "
                                        f"{_SAID[types[c]]} (from the first lines)")
                    break
        rows.append(row)
        errors.append(error)
    pending.clear()
    return _table(columns, types, rows, errors)


def _json_reason(e: ValueError) -> str:
    msg = getattr(e, "msg", None)
    col = getattr(e, "colno", None)
    return f"{msg} at column {col}" if msg and col else str(e)[:200]


# ------------------------------------------------------------------------------------------ Parquet
def parquet_tables(path: Path, chunk_rows: int) -> Iterator[pa.Table]:
    """Row group by row group; rows of a group that cannot be read are bad rows saying so."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    schema = pf.schema_arrow
    first, yielded = 1, False
    for i in range(pf.num_row_groups):
        n = pf.metadata.row_group(i).num_rows
        try:
            table = pf.read_row_group(i)
            errors = pa.nulls(table.num_rows, pa.string())
        except (pa.ArrowException, OSError) as e:
            reason = f"rows {first}-{first + n - 1} (row group {i + 1}) cannot be read: {str(e).splitlines()[0][:200]}"
            table = pa.Table.from_pylist([{}] * n, schema=schema) if n else schema.empty_table()
            errors = pa.array([reason] * n, pa.string())
        for start in range(0, table.num_rows, chunk_rows):
            part = table.slice(start, chunk_rows)
            yield part.append_column(ROW_ERROR, errors.slice(start, chunk_rows))
            yielded = True
        first += n
    if not yielded:  # no row groups, or only empty ones (pyarrow writes an empty table as one group of 0 rows)
        yield schema.empty_table().append_column(ROW_ERROR, pa.array([], pa.string()))
