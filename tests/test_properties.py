"""Property-based tests (hypothesis) of what a nightly job meets (issue 16):

- generated catalogs (encodings, byte-order marks, CRLF, NULs, quotes, 1 MB fields, duplicate or
  missing columns, mixed JSON types, broken lines) give exactly one row per record the generator wrote,
  broken ones as ``bad_row`` with their line; a usage error before any row only where the generator
  knows one is due (a column named twice, no readable row), said in those words;
- random bytes named .csv or .jsonl never end in anything but those two outcomes, the usage error one of
  the known faults in words; random but well-formed records under a good header are exactly their rows;
- mutated image bytes of every format Pillow writes (truncated, bits flipped, headers swapped,
  sizes lied about) end as a row status, never an exception.

Sizes are kept small for CI (``max_examples``); ``SCORER_HYPOTHESIS_EXAMPLES`` raises them for a
longer run before a release.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import re
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from scorer.decode import decode_image
from scorer.errors import STATUS_CODES, RowError
from scorer.fetch.http import sniff_image
from scorer.filters import UsageError
from scorer.sources.catalog import iter_catalog
from scorer.sources.rows import ROW_ERROR

EXAMPLES = int(os.environ.get("SCORER_HYPOTHESIS_EXAMPLES", "40"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12)
big = st.sampled_from(["", "x" * (1 << 20)])  # a 1 MB field now and then


def read_all(path: Path) -> list[dict]:
    _, chunks = iter_catalog(path, 64)
    return [row for chunk in chunks for row in chunk.to_pylist()]


# ------------------------------------------------------------------------------------------ CSV
def csv_field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\r\n') else value


@st.composite
def csv_catalogs(draw):
    """(bytes, expected rows as None for good / 'line N' for broken, the usage errors allowed, whether one is due)."""
    extra = draw(st.lists(st.sampled_from(["title", "artist", "id", "year"]), max_size=3))
    header = ["cover_url", *extra]
    if draw(st.booleans()) and extra:
        header.append(extra[0])  # a column named twice: a usage error
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines, expected = [",".join(header)], []
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(["good", "good", "good", "fields", "quote", "blank", "nul"]))
        values = [draw(text) for _ in header]
        if kind in {"good", "nul"}:
            if kind == "nul":
                values[-1] = values[-1] + "\x00"
            values[0] = values[0] + draw(big)
            # one empty field alone on a line is a blank line to any CSV reader: quoted, as csv.writer does
            lines.append(",".join(csv_field(v) for v in values) if values != [""] else '""')
            expected.append(None)
        elif kind == "fields":
            lines.append(",".join(csv_field(v) for v in values + ["extra"]))
            expected.append(f"line {len(lines)}")
        elif kind == "quote":
            lines.append(",".join(csv_field(v) for v in values[:-1]) + (',' if len(values) > 1 else '')
                         + '"broken"quote')
            expected.append(f"line {len(lines)}")
        else:
            lines.append("")
    body = newline.join(lines) + newline
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
    if encoding == "cp1252":
        body = body.encode("cp1252", errors="replace").decode("cp1252")
    data = body.encode(encoding, errors="replace") if encoding != "cp1252" else body.encode("cp1252")
    return data, expected, *_usage_error_due(header, expected, encoding, data)


def _usage_error_due(header: list[str], expected: list[str | None], encoding: str, data: bytes
                     ) -> tuple[list[str], bool]:
    """The usage errors a generated catalog may end in (patterns of their messages; none: the catalog is valid
    and every record must come back as a row), and whether it must end in one."""
    allowed, must = [], False
    if encoding == "cp1252" and not data.isascii():
        # read first: cp1252 is taken only when it looks like Latin-script text (scorer.sources.text); random
        # characters from the whole code page may not, and then the error names the byte and the encoding option
        allowed.append(r"line \d+ \(byte \d+\): byte 0x[0-9a-f]{2} is not utf-8.* with (--)?encoding")
    if len(set(header)) != len(header):
        allowed.append("the header names .* more than once")
        must = True
    elif expected and all(want is not None for want in expected):
        allowed.append("not one row of the first .* can be read as CSV")
        must = True
    return allowed, must


@SETTINGS
@given(csv_catalogs())
def test_generated_csv_catalogs(tmp_path_factory, case):
    data, expected, allowed, must = case
    path = tmp_path_factory.mktemp("csv") / "c.csv"
    path.write_bytes(data)
    try:
        rows = read_all(path)
    except UsageError as e:
        # a usage error only where one is due, and the one due (a cp1252 file may also read as rows)
        assert allowed, f"a valid catalog ({len(expected)} records) was refused: {e}"
        assert any(re.search(a, str(e)) for a in allowed), (allowed, str(e))
        return
    assert not must, f"no usage error, but one is due: {allowed[-1]}"
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected):
        if want is None:
            assert row[ROW_ERROR] is None, row[ROW_ERROR]
        else:
            assert row[ROW_ERROR].startswith(want + ":"), (row[ROW_ERROR], want)


# ------------------------------------------------------------------------------------------ JSONL
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False,
                        allow_infinity=False), text)


@st.composite
def jsonl_catalogs(draw):
    lines, kinds = [], []
    year_type = draw(st.sampled_from([int, str]))
    for i in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["good", "good", "good", "broken", "array", "blank", "mixed", "nested"]))
        if kind == "blank":
            lines.append("   ")
            continue
        obj = {"cover_url": f"covers/{i}.jpg" + draw(big), "year": year_type(1990 + i), "note": draw(json_scalar)}
        if kind == "broken":
            lines.append(json.dumps(obj)[:-3])
        elif kind == "array":
            lines.append(json.dumps(list(obj.values())))
        elif kind == "mixed":
            obj["year"] = "text" if year_type is int else 1990
            lines.append(json.dumps(obj))
        elif kind == "nested":
            obj["note"] = {"a": [1, 2]}
            lines.append(json.dumps(obj, ensure_ascii=False))
        else:
            lines.append(json.dumps(obj, ensure_ascii=draw(st.booleans())))
        kinds.append((len(lines), kind))
    return "\n".join(lines) + "\n", kinds


@SETTINGS
@given(jsonl_catalogs())
def test_generated_jsonl_catalogs(tmp_path_factory, case):
    body, kinds = case
    path = tmp_path_factory.mktemp("jsonl") / "c.jsonl"
    path.write_bytes(body.encode("utf-8"))
    first_good = next((i for i, (_, k) in enumerate(kinds) if k in ("good", "nested")), None)
    try:
        rows = read_all(path)
    except UsageError:
        # a usage error only when nothing in the first chunk parses as an object with a cover_url
        assert first_good is None or first_good >= 64 or all(k in ("broken", "array") for _, k in kinds[:64])
        return
    assert len(rows) == len(kinds)
    for row, (line, kind) in zip(rows, kinds):
        if kind in ("broken", "array"):
            assert row[ROW_ERROR].startswith(f"line {line}:"), (row, line, kind)
        elif kind in ("good", "nested"):
            # a good line is bad only when its first-seen types disagree (a 'mixed' line came first)
            assert row[ROW_ERROR] is None or "the column holds" in row[ROW_ERROR]


#: what a file that cannot be read at all may be told, in words (scorer.sources.text, rows and catalog)
JUNK_ERRORS = (r"byte 0x[0-9a-f]{2} is not (utf-8|utf-16|utf-8-sig)\b.* with (--)?encoding",
               r"the header line cannot be read \(", r"the header names .* more than once",
               r"no 'cover_url' column \(found: .*\); each row needs a cover_url",
               r"not one row of the first \d+ can be read as (CSV|JSONL) \(first: line \d+: ",
               r"'cover_url' must hold text", r": no rows and no columns$")


@SETTINGS
@given(st.binary(max_size=2000), st.sampled_from([".csv", ".jsonl"]),
       st.sampled_from([b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE]))
def test_random_bytes_are_a_usage_error_or_rows(tmp_path_factory, data, suffix, bom):
    path = tmp_path_factory.mktemp("junk") / f"junk{suffix}"
    path.write_bytes(bom + data)
    try:
        rows = read_all(path)
    except UsageError as e:
        assert str(e).startswith(f"{path}"), str(e)  # names the file
        assert any(re.search(p, str(e)) for p in JUNK_ERRORS), str(e)  # and says which of the known faults
        return
    assert all(isinstance(r[ROW_ERROR], (str, type(None))) for r in rows)


@st.composite
def well_formed_lines(draw):
    """A good header (or none, for JSONL) then random but well-formed records: (file bytes, suffix, records)."""
    any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
    records = draw(st.lists(st.tuples(any_text, any_text), min_size=1, max_size=20))
    suffix = draw(st.sampled_from([".csv", ".jsonl"]))
    if suffix == ".csv":
        newline = draw(st.sampled_from(["\n", "\r\n"]))
        body = newline.join(["cover_url,title", *(",".join(csv_field(v) for v in r) for r in records)]) + newline
    else:
        body = "".join(json.dumps({"cover_url": u, "title": t}, ensure_ascii=draw(st.booleans())) + "\n"
                       for u, t in records)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
    return body.encode(encoding), suffix, records


@SETTINGS
@given(well_formed_lines())
def test_random_well_formed_lines_are_their_rows(tmp_path_factory, case):
    """Random text in well-formed records (any character, quotes, commas, line breaks inside quoted fields)
    under a good header: every record is its row, as written; never a usage error."""
    data, suffix, records = case
    path = tmp_path_factory.mktemp("lines") / f"c{suffix}"
    path.write_bytes(data)
    rows = read_all(path)
    assert [(r["cover_url"], r["title"], r[ROW_ERROR]) for r in rows] == [(u, t, None) for u, t in records]


# ------------------------------------------------------------------------------------------ images
FORMATS = ["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "ICO", "PPM", "TGA"]


@pytest.fixture(scope="module")
def encoded(sample_covers) -> dict[str, bytes]:
    out = {}
    with Image.open(sample_covers[0]) as im:
        small = im.convert("RGB").resize((64, 64))
    for fmt in FORMATS:
        buf = io.BytesIO()
        small.save(buf, fmt)
        out[fmt] = buf.getvalue()
    return out


def mutate(data: bytes, how: str, at: float, value: int) -> bytes:
    i = int(at * max(len(data) - 1, 1))
    if how == "truncate":
        return data[:i]
    if how == "flip":
        return data[:i] + bytes([data[i] ^ (1 << (value % 8))]) + data[i + 1:] if data else data
    if how == "header":
        return b"\x89PNG\r\n\x1a\n" + data[8:] if value % 2 else b"\xff\xd8\xff\xe0" + data[4:]
    if how == "huge":  # a PNG header that claims 60,000 x 60,000 pixels
        return data[:16] + struct.pack(">II", 60_000, 60_000) + data[24:] if data.startswith(b"\x89PNG") else data
    return data


@SETTINGS
@given(st.sampled_from(FORMATS), st.sampled_from(["truncate", "flip", "header", "huge", "none"]),
       st.floats(0, 1), st.integers(0, 255))
def test_mutated_images_end_as_a_status(encoded, fmt, how, at, value):
    data = mutate(encoded[fmt], how, at, value)
    try:
        sniff_image(data, "cover")
        image = decode_image(data)
    except RowError as e:
        assert e.code in STATUS_CODES and e.code != "ok" and e.message
        return
    assert image.shape == (224, 224, 3) and image.dtype.name == "uint8"
