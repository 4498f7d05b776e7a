"""Catalogs and link files in other encodings than UTF-8: read when the file says or shows which,
refused with the line and byte otherwise (issue 16: a cp1252 CSV ended in a traceback)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from scorer.cli import app
from scorer.filters import UsageError
from scorer.sources import text
from scorer.sources.text import file_encoding


def rows(n: int = 6000, at: int = 5000, title: str = "café") -> list[str]:
    """A header and ``n`` rows of missing local covers (nothing to fetch); row ``at`` is on line ``at + 2``."""
    out = ["id,cover_url,title"] + [f"{i},missing/{i}.jpg,t{i}" for i in range(n)]
    out[at + 1] = f"{at},missing/{at}.jpg,{title}"
    return out


def write(path, lines: list[str], encoding: str, tail: bytes = b""):
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding) + tail)
    return path


def score(path, *args):
    out = path.parent / "out.parquet"
    result = CliRunner().invoke(app, ["catalog", str(path), "--out", str(out), "--json", *args])
    return result, out


def test_spreadsheet_cp1252_csv_is_read_as_cp1252(tmp_path):
    src = write(tmp_path / "c.csv", rows(), "cp1252")
    result, out = score(src)
    assert result.exit_code == 0, result.output
    assert "reading it as cp1252, detected" in result.output
    table = pq.read_table(out)
    assert table.num_rows == 6000
    assert table.column("title")[5000].as_py() == "café"
    assert json.loads(result.output.strip().splitlines()[-1])["failed"] == {"not_found": 6000}


def test_a_wrong_encoding_names_the_line_and_byte_and_writes_nothing(tmp_path):
    src = write(tmp_path / "c.csv", rows(), "cp1252")
    result, out = score(src, "--encoding", "utf-8")
    assert result.exit_code == 2
    assert "line 5002" in result.output and "byte 0xe9 is not utf-8" in result.output and "--encoding" in result.output
    assert not out.exists()
    unknown, _ = score(src, "--encoding", "klingon")
    assert unknown.exit_code == 2 and "unknown encoding" in unknown.output


@pytest.mark.parametrize(("title", "encoding", "guess"), [("Привет мир", "cp1251", None),
                                                          ("Ελληνικά κείμενο", "cp1253", "cp1253")])
def test_other_scripts_in_a_code_page_are_refused_not_garbled(tmp_path, title, encoding, guess):
    src = write(tmp_path / "c.csv", rows(600, 500, title), encoding)
    result, out = score(src)
    assert result.exit_code == 2 and "line 502" in result.output and "--encoding" in result.output
    assert guess is None or f"guesses {guess}" in result.output
    assert not out.exists()
    ok, out = score(src, "--encoding", encoding)
    assert ok.exit_code == 0, ok.output
    assert pq.read_table(out).column("title")[500].as_py() == title


def test_damaged_utf8_is_refused_not_guessed(tmp_path):
    # UTF-8 accents elsewhere, and one stray byte: damage, which no code page should paper over
    src = write(tmp_path / "c.csv", rows(title="Björk"), "utf-8", tail=b"6000,missing/x.jpg,\xe9\n")
    result, out = score(src)
    assert result.exit_code == 2 and "line 6002" in result.output and "0xe9" in result.output
    assert not out.exists()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_byte_order_marks_decide(tmp_path, encoding):
    src = write(tmp_path / "c.csv", rows(50, 7, "Señor"), encoding)
    assert file_encoding(src).name == encoding and not file_encoding(src).detected
    result, out = score(src)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column_names[:3] == ["id", "cover_url", "title"]  # the mark is not part of the first name
    assert table.column("title")[7].as_py() == "Señor" and table.num_rows == 50


def test_jsonl_and_link_files_too(tmp_path):
    lines = [json.dumps({"cover_url": f"missing/{i}.jpg", "artist": "Motörhead"}, ensure_ascii=False)
             for i in range(30)]
    src = write(tmp_path / "c.jsonl", lines, "cp1252")
    result, out = score(src)
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).column("artist").to_pylist() == ["Motörhead"] * 30

    # loopback URLs: refused as blocked_address without a request
    links = write(tmp_path / "l.tsv", [f"http://127.0.0.1:9/{i}.jpg\trock/café-{i}.jpg" for i in range(5)], "cp1252")
    out = tmp_path / "links.parquet"
    result = CliRunner().invoke(app, ["links", str(links), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).column("album_id").to_pylist() == [f"café-{i}" for i in range(5)]


def test_the_reported_byte_is_right_across_read_blocks(tmp_path, monkeypatch):
    lines = rows(200, 150, "naïve")
    src = write(tmp_path / "c.csv", lines, "utf-8")
    src.write_bytes(src.read_bytes().replace("naïve".encode(), b"na\xefve"))  # cp1252 bytes in UTF-8 text
    offset = src.read_bytes().index(b"\xefve")
    for block in (1, 2, 3, 7, 4096):
        monkeypatch.setattr(text, "CHUNK", block)
        with pytest.raises(UsageError, match=f"line 152 \\(byte {offset + 1}\\): byte 0xef is not utf-8"):
            file_encoding(src, "utf-8")
