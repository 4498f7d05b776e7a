"""Broken lines are rows, not the end of the run (issue 16): every other row is scored, the broken one
gets status bad_row with its real line number and the parser's reason; only a file that cannot be
read at all is a usage error, before any work. The covers here are missing local files: nothing is
fetched, every good row ends as not_found."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from scorer.cli import app


def score(src, *args):
    out = src.parent / "out.parquet"
    result = CliRunner().invoke(app, ["catalog", str(src), "--out", str(out), "--json", *args])
    return result, out


def bad(df: pd.DataFrame) -> dict[int, str]:
    """Row index → error, for the bad rows."""
    return {i: e for i, (s, e) in enumerate(zip(df.status, df.error)) if s == "bad_row"}


def test_csv_lines_that_cannot_be_parsed(tmp_path):
    lines = ["id,cover_url,title"] + [f"{i},missing/{i}.jpg,t{i}" for i in range(6000)]
    lines[101] = "100,missing/100.jpg,a,b,c"  # five fields under a three-field header
    lines[3001] = '3000,missing/3000.jpg,"a quoted title,\nspanning two lines"'  # fine: one record, two lines
    lines[5001] = '5000,missing/5000.jpg,"half"quoted'
    src = tmp_path / "c.csv"
    src.write_text("\n".join(lines) + "\n")
    result, out = score(src)
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    assert len(df) == 6000 and list(df.id[:3]) == ["0", "1", "2"]
    # the quoted title spans lines 3002-3003, so the broken record after it starts on line 5003
    assert bad(df) == {100: "line 102: 5 fields, the header has 3",
                       5000: "line 5003: bad quoting (',' expected after '\"')"}
    assert df.title[3000] == "a quoted title,\nspanning two lines" and df.status[3000] == "not_found"
    assert (df.status == "not_found").sum() == 5998
    assert json.loads(result.output.strip().splitlines()[-1])["failed"] == {"not_found": 5998, "bad_row": 2}


def test_jsonl_with_a_broken_line_5001(tmp_path):
    lines = [json.dumps({"id": i, "cover_url": f"missing/{i}.jpg", "year": 1990 + i % 10}) for i in range(6000)]
    lines[5000] = '{"id": 5000, "cover_url": "missing/5000.jpg", "year": 19'  # cut short
    lines[10] = "[10, 11]"
    lines[20] = json.dumps({"id": 20, "cover_url": "missing/20.jpg", "year": "nineteen ninety"})
    lines[30] = json.dumps({"id": 30, "cover_url": 30})
    src = tmp_path / "c.jsonl"
    src.write_text("\n".join(lines[:40]) + "\n\n" + "\n".join(lines[40:]) + "\n")  # a blank line is not a row
    result, out = score(src)
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    assert len(df) == 6000
    assert bad(df) == {
        10: "line 11: a JSON array, not an object with a cover_url",
        20: "line 21: 'year' is text; the column holds whole numbers (from the first lines)",
        30: "line 31: 'cover_url' is a whole number; the column holds text (from the first lines)",
        5000: "line 5002: not JSON (Expecting ',' delimiter at column 57)",  # the blank line 41 counts
    }
    assert df.year[0] == 1990 and df.year[5999] == 1999 and pd.isna(df.year[10])  # numbers stay numbers


def test_a_damaged_parquet_row_group(tmp_path):
    src = tmp_path / "c.parquet"
    table = pa.table({"id": [f"{i:04d}" for i in range(999)], "cover_url": [f"missing/{i}.jpg" for i in range(999)]})
    pq.write_table(table, src, row_group_size=333, compression="zstd")
    meta = pq.ParquetFile(src).metadata
    column = meta.row_group(1).column(1)
    data = bytearray(src.read_bytes())
    start = column.data_page_offset + 40
    data[start:start + 200] = b"\xa5" * 200  # the second group's cover_url pages: garbage
    src.write_bytes(bytes(data))
    result, out = score(src)
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    assert len(df) == 999
    broken = bad(df)
    assert sorted(broken) == list(range(333, 666))
    assert broken[333].startswith("rows 334-666 (row group 2) cannot be read: ")
    assert list(df.id[:333]) == [f"{i:04d}" for i in range(333)] and df.id[666] == "0666"


def test_a_file_that_cannot_be_read_at_all_is_a_usage_error(tmp_path):
    cases = {
        "notes.jsonl": "this is not json\nnor is this\n",
        "dupes.csv": "cover_url,title,title\nmissing/a.jpg,x,y\n",
    }
    messages = {"notes.jsonl": "not one row of the first 2 can be read as JSONL (first: line 1: not JSON",
                "dupes.csv": "the header names 'title' more than once"}
    for name, text in cases.items():
        src = tmp_path / name
        src.write_text(text)
        result, out = score(src)
        assert result.exit_code == 2 and messages[name] in result.output, result.output
        assert not out.exists()


def test_dataset_mode_keeps_bad_rows_in_place(tmp_path):
    lines = ["id,cover_url"] + [f"{i},missing/{i}.jpg" for i in range(250)]
    lines[120] = '119,"missing/119.jpg'  # an open quote: the rest of the file is one bad record
    src = tmp_path / "c.csv"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "dataset"
    result = CliRunner().invoke(app, ["catalog", str(src), "--out", str(out), "--shard-rows", "50", "--json"])
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    assert len(df) == 120  # 119 good records, then one record to the end of the file
    assert list(df.id[:119]) == [str(i) for i in range(119)]  # the parts, read in order, keep the input order
    assert bad(df) == {119: "line 121: a quote is never closed (the rest of the file was read as this one record)"}
