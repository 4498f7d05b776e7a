"""The catalog readers (scorer.sources.rows and scorer.sources.catalog) without scoring: each input row is one
row, a broken one says its line and why, chunks have exactly the rows asked for, and a file that cannot be read
at all is one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scorer.errors import InputNotFound, UsageError
from scorer.sources.catalog import catalog_format, iter_catalog, read_catalog, text_encoding
from scorer.sources.rows import MAX_FIELD, ROW_ERROR, csv_tables, jsonl_tables, parquet_tables


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def _rows(tables) -> list[dict]:
    return [r for t in tables for r in t.to_pylist()]


# ------------------------------------------------------------------------------------------ CSV
def test_csv_rows_are_text_and_broken_records_say_their_line(tmp_path):
    src = _write(tmp_path / "c.csv", 'cover_url,id\na.jpg,007\n\nb.jpg,1,extra\n"multi\nline.jpg",2\nc.jpg\n'
                                     'd.jpg,"x"y\ne.jpg,3\n')
    got = _rows(csv_tables(src, "utf-8", 100))
    assert got == [
        {"cover_url": "a.jpg", "id": "007", ROW_ERROR: None},
        {"cover_url": None, "id": None, ROW_ERROR: "line 4: 3 fields, the header has 2"},  # the blank line counts
        {"cover_url": "multi\nline.jpg", "id": "2", ROW_ERROR: None},
        {"cover_url": None, "id": None, ROW_ERROR: "line 7: 1 fields, the header has 2"},
        {"cover_url": None, "id": None, ROW_ERROR: "line 8: bad quoting (',' expected after '\"')"},
        {"cover_url": "e.jpg", "id": "3", ROW_ERROR: None},
    ]


def test_csv_a_quote_never_closed_swallows_the_rest_as_one_bad_record(tmp_path):
    src = _write(tmp_path / "c.csv", 'cover_url,id\na.jpg,1\n"b.jpg,2\nc.jpg,3\n')
    got = _rows(csv_tables(src, "utf-8", 100))
    assert [r[ROW_ERROR] for r in got] == [None, "line 3: a quote is never closed (the rest of the file was read "
                                                 "as this one record)"]


def test_csv_a_field_over_the_limit_is_a_bad_record(tmp_path):
    src = _write(tmp_path / "c.csv", "cover_url,id\n" + "x" * (MAX_FIELD + 1) + ",1\nb.jpg,2\n")
    got = _rows(csv_tables(src, "utf-8", 100))
    assert [r[ROW_ERROR] for r in got] == ["line 2: a field over 16 MB", None] and got[1]["cover_url"] == "b.jpg"


def test_csv_header_faults_are_usage_errors(tmp_path):
    with pytest.raises(UsageError) as e:
        list(csv_tables(_write(tmp_path / "d.csv", "cover_url,t,id,t,id\n"), "utf-8", 10))
    assert str(e.value) == (f"{tmp_path / 'd.csv'}: the header names 'id', 't' more than once; each column needs a "
                            "name of its own")
    with pytest.raises(UsageError) as e:
        list(csv_tables(_write(tmp_path / "q.csv", 'cover_url,"id"x\n'), "utf-8", 10))
    assert str(e.value) == (f"{tmp_path / 'q.csv'}: the header line cannot be read (bad quoting (',' expected "
                            "after '\"'))")


def test_csv_chunks_hold_exactly_chunk_rows_and_an_empty_catalog_is_one_empty_table(tmp_path):
    src = _write(tmp_path / "c.csv", "cover_url\n" + "".join(f"{i}.jpg\n" for i in range(4)))
    assert [t.num_rows for t in csv_tables(src, "utf-8", 2)] == [2, 2]
    assert [t.num_rows for t in csv_tables(src, "utf-8", 3)] == [3, 1]
    empty = list(csv_tables(_write(tmp_path / "e.csv", "cover_url,id\n"), "utf-8", 2))
    assert [t.column_names for t in empty] == [["cover_url", "id", ROW_ERROR]] and empty[0].num_rows == 0
    assert empty[0].schema.field("id").type == pa.string()


# ------------------------------------------------------------------------------------------ JSON Lines
def test_jsonl_types_come_from_the_first_values_and_a_misfit_makes_its_line_bad(tmp_path):
    lines = [{"cover_url": "a.jpg", "n": 1, "x": 1.5, "ok": True, "tags": None},
             {"cover_url": "b.jpg", "n": 2, "x": 2, "ok": False, "tags": ["é", 1], "later": 1},
             {"cover_url": "c.jpg", "n": 2.5},
             {"cover_url": "d.jpg", "n": True},
             {"cover_url": "e.jpg", "ok": 1},
             {"cover_url": 5},
             {"cover_url": "f.jpg", "x": "1.0"},
             {"cover_url": "g.jpg", "tags": {"k": "v"}}]
    src = _write(tmp_path / "c.jsonl", "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    tables = list(jsonl_tables(src, "utf-8", 100))
    schema = tables[0].schema
    assert [(f.name, f.type) for f in schema] == [("cover_url", pa.string()), ("n", pa.int64()), ("x", pa.float64()),
                                                  ("ok", pa.bool_()), ("tags", pa.string()), ("later", pa.int64()),
                                                  (ROW_ERROR, pa.string())]
    got = _rows(tables)
    assert got[0] == {"cover_url": "a.jpg", "n": 1, "x": 1.5, "ok": True, "tags": None, "later": None,
                      ROW_ERROR: None}
    assert got[1]["x"] == 2.0 and got[1]["tags"] == '["é", 1]' and got[7]["tags"] == '{"k": "v"}'
    assert [r[ROW_ERROR] for r in got[2:7]] == [
        "line 3: 'n' is a number; the column holds whole numbers (from the first lines)",
        "line 4: 'n' is true or false; the column holds whole numbers (from the first lines)",
        "line 5: 'ok' is a whole number; the column holds true or false (from the first lines)",
        "line 6: 'cover_url' is a whole number; the column holds text (from the first lines)",
        "line 7: 'x' is text; the column holds numbers (from the first lines)",
    ]
    assert all(v is None for k, v in got[3].items() if k != ROW_ERROR)


def test_jsonl_lines_that_are_not_objects_say_what_they_are(tmp_path):
    text = '{"cover_url": "a.jpg"}\n[1]\n"t"\n\n7\n7.5\ntrue\nnull\n{"cover_url": \n' + "1" * 5000 + "\r\n"
    got = _rows(jsonl_tables(_write(tmp_path / "c.jsonl", text), "utf-8", 100))
    assert [r[ROW_ERROR] for r in got] == [
        None,
        "line 2: a JSON array, not an object with a cover_url",
        "line 3: text, not an object with a cover_url",
        "line 5: a whole number, not an object with a cover_url",  # the blank line 4 counts, and is no row
        "line 6: a number, not an object with a cover_url",
        "line 7: true or false, not an object with a cover_url",
        "line 8: null, not an object with a cover_url",
        "line 9: not JSON (Expecting value at column 15)",
        "line 10: not JSON (Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits; "
        "use sys.set_int_max_str_digits() to increase the limit)",
    ]


def test_jsonl_a_nested_value_in_a_text_column_is_json_and_a_column_of_nulls_is_text(tmp_path):
    src = _write(tmp_path / "c.jsonl", '{"cover_url": "a", "o": {"b": [1, "ü"]}, "z": null}\n'
                                       '{"cover_url": "b", "o": "s"}\n')
    table = pa.concat_tables(jsonl_tables(src, "utf-8", 10))
    assert table.schema.field("z").type == pa.string()
    assert table.column("o").to_pylist() == ['{"b": [1, "ü"]}', "s"]


def test_jsonl_columns_are_fixed_by_the_first_chunk(tmp_path):
    src = _write(tmp_path / "c.jsonl", '{"cover_url": "a"}\n{"cover_url": "b"}\n{"cover_url": "c", "n": 1}\n')
    tables = list(jsonl_tables(src, "utf-8", 2))
    assert [t.num_rows for t in tables] == [2, 1]
    assert tables[1].column_names == ["cover_url", ROW_ERROR] and tables[1].column("cover_url").to_pylist() == ["c"]
    # exactly one chunk: no empty table after it; an empty file: one table without columns
    assert [t.num_rows for t in jsonl_tables(src, "utf-8", 3)] == [3]
    empty = list(jsonl_tables(_write(tmp_path / "e.jsonl", "\n"), "utf-8", 3))
    assert [(t.num_rows, t.column_names) for t in empty] == [(0, [ROW_ERROR])]


# ------------------------------------------------------------------------------------------ Parquet
def _damaged_parquet(path: Path) -> Path:
    table = pa.table({"id": [f"{i:02d}" for i in range(9)], "cover_url": [f"c/{i}.jpg" for i in range(9)]})
    pq.write_table(table, path, row_group_size=3, compression="zstd")
    column = pq.ParquetFile(path).metadata.row_group(1).column(1)
    data = bytearray(path.read_bytes())
    data[column.data_page_offset + 10:column.data_page_offset + 60] = b"\xa5" * 50
    path.write_bytes(bytes(data))
    return path


def test_parquet_row_groups_in_chunks_and_a_damaged_group_is_bad_rows_saying_which(tmp_path):
    src = _damaged_parquet(tmp_path / "c.parquet")
    with pytest.raises((pa.ArrowException, OSError)) as e:  # what pyarrow says of the damaged group
        pq.ParquetFile(src).read_row_group(1)
    tables = list(parquet_tables(src, 2))
    assert [t.num_rows for t in tables] == [2, 1, 2, 1, 2, 1]
    rows = _rows(tables)
    assert [r["id"] for r in rows] == ["00", "01", "02", None, None, None, "06", "07", "08"]
    errors = [r[ROW_ERROR] for r in rows]
    assert errors[:3] == [None] * 3 and errors[6:] == [None] * 3
    assert errors[3:6] == [f"rows 4-6 (row group 2) cannot be read: {str(e.value).splitlines()[0][:200]}"] * 3


def test_an_empty_parquet_catalog_is_one_empty_table_with_its_columns(tmp_path):
    """pyarrow writes an empty table as one row group of no rows; other writers as none."""
    empty = pa.table({"cover_url": pa.array([], pa.string()), "n": pa.array([], pa.int64())})
    pq.write_table(empty, tmp_path / "e.parquet")
    assert pq.ParquetFile(tmp_path / "e.parquet").num_row_groups == 1
    with pq.ParquetWriter(tmp_path / "none.parquet", empty.schema):
        pass
    assert pq.ParquetFile(tmp_path / "none.parquet").num_row_groups == 0
    for name in ("e.parquet", "none.parquet"):
        tables = list(parquet_tables(tmp_path / name, 5))
        assert [(t.num_rows, t.column_names) for t in tables] == [(0, ["cover_url", "n", ROW_ERROR])]
        schema, chunks = iter_catalog(tmp_path / name)
        assert schema.names == ["cover_url", "n"] and [t.num_rows for t in chunks] == [0]


# ------------------------------------------------------------------------------------------ catalog files
def test_catalog_format_by_suffix_any_case_and_missing_files(tmp_path):
    for name, fmt in [("a.CSV", "csv"), ("a.ndjson", "jsonl"), ("a.json", "jsonl"), ("a.pq", "parquet")]:
        assert catalog_format(_write(tmp_path / name, "")) == fmt
    with pytest.raises(UsageError) as e:
        catalog_format(_write(tmp_path / "a.txt", ""))
    assert str(e.value) == f"{tmp_path / 'a.txt'}: unknown catalog format '.txt'; use .csv, .jsonl or .parquet"
    with pytest.raises(InputNotFound) as e:
        catalog_format(tmp_path / "gone.csv")
    assert str(e.value) == f"{tmp_path / 'gone.csv'}: no such file"


def test_iter_catalog_gives_the_schema_without_the_error_column_and_exact_chunks(tmp_path):
    src = _write(tmp_path / "c.csv", "\ufeffcover_url,id\n" + "".join(f"{i}.jpg,{i}\n" for i in range(7)) + "x\n")
    schema, chunks = iter_catalog(src, 3)
    assert schema.names == ["cover_url", "id"]  # the byte-order mark is not part of the first name
    tables = list(chunks)
    assert [t.num_rows for t in tables] == [3, 3, 2]
    assert tables[2].column(ROW_ERROR).to_pylist() == [None, "line 9: 1 fields, the header has 2"]
    assert read_catalog(src).column("id").to_pylist() == [str(i) for i in range(7)] + [None]
    # an encoding given is the one read with, detection or not
    utf8 = _write(tmp_path / "u.csv", "cover_url,title\na.jpg,café\n")
    assert read_catalog(utf8).column("title").to_pylist() == ["café"]
    assert read_catalog(utf8, "latin-1").column("title").to_pylist() == ["cafÃ©"]
    assert text_encoding(src) == "utf-8-sig" and text_encoding(_write(tmp_path / "p.csv", "cover_url\n")) == "utf-8"


def test_iter_catalog_rechunks_parquet_row_groups(tmp_path):
    pq.write_table(pa.table({"cover_url": [f"{i}.jpg" for i in range(10)]}), tmp_path / "c.parquet",
                   row_group_size=4)
    _, chunks = iter_catalog(tmp_path / "c.parquet", 3)
    tables = list(chunks)
    assert [t.num_rows for t in tables] == [3, 3, 3, 1]
    assert all(t.column(0).num_chunks == 1 for t in tables)
    assert [r["cover_url"] for r in _rows(tables)] == [f"{i}.jpg" for i in range(10)]
    _, one = iter_catalog(tmp_path / "c.parquet", 10)
    assert [t.num_rows for t in one] == [10]


def test_a_catalog_that_cannot_be_read_at_all_is_one_line(tmp_path):
    with pytest.raises(UsageError) as e:
        iter_catalog(_write(tmp_path / "n.jsonl", "no\nnor this\n"))
    assert str(e.value) == (f"{tmp_path / 'n.jsonl'}: not one row of the first 2 can be read as JSONL (first: "
                            "line 1: not JSON (Expecting value at column 1))")
    with pytest.raises(UsageError) as e:
        iter_catalog(_write(tmp_path / "x.parquet", "not parquet at all"))
    assert str(e.value).startswith(f"{tmp_path / 'x.parquet'}: not a valid PARQUET catalog: ")
    with pytest.raises(UsageError) as e:
        iter_catalog(_write(tmp_path / "u.csv", "url,id\na,1\n"))
    assert str(e.value) == (f"{tmp_path / 'u.csv'}: no 'cover_url' column (found: url, id); each row needs a "
                            "cover_url with an http(s) URL or a local path")
    with pytest.raises(UsageError) as e:
        iter_catalog(_write(tmp_path / "e.csv", ""))
    assert "no 'cover_url' column (found: none)" in str(e.value)


def test_the_cover_column_must_be_text_and_may_be_named_otherwise(tmp_path):
    with pytest.raises(UsageError) as e:
        iter_catalog(_write(tmp_path / "n.jsonl", '{"cover_url": 1}\n'))
    assert str(e.value) == f"{tmp_path / 'n.jsonl'}: 'cover_url' must hold text (URLs or paths)"
    # every value null: a text column of missing URLs; large strings: plain text
    _, chunks = iter_catalog(_write(tmp_path / "z.jsonl", '{"cover_url": null, "id": 1}\n'))
    assert next(chunks).schema.field("cover_url").type == pa.string()
    pq.write_table(pa.table({"img": pa.array(["a.jpg"], pa.large_string())}), tmp_path / "l.parquet")
    schema, chunks = iter_catalog(tmp_path / "l.parquet", url_col="img")
    assert schema.field("img").type == pa.string() and next(chunks).column("img").to_pylist() == ["a.jpg"]
    # an empty Parquet catalog with a number column of covers has no row to refuse
    pq.write_table(pa.table({"cover_url": pa.array([], pa.int64())}), tmp_path / "e.parquet")
    schema, chunks = iter_catalog(tmp_path / "e.parquet")
    assert [t.num_rows for t in chunks] == [0] and schema.names == ["cover_url"]
