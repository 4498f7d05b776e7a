"""The text encoding of a CSV or JSONL file: UTF-8 unless the file says or shows otherwise.

A spreadsheet saves CSV in the machine's code page (cp1252 on Western Windows: ``café`` as the
single byte 0xE9), and some tools write UTF-16 with a byte-order mark. :func:`file_encoding` checks
the whole file (a bad byte can sit on line 5,001): a byte-order mark decides; else UTF-8 if every
byte decodes as UTF-8; else cp1252, when the file holds no UTF-8 sequence at all (so it is not
damaged UTF-8), cp1252 reads all of it, and its non-ASCII bytes sit one or two at a time inside
words, as accents do in Latin-script text (Cyrillic or Greek in a code page fills whole words).
Anything else is a :class:`UsageError` naming the file, the first undecodable line and byte,
charset-normalizer's guess, and ``--encoding``. Detection is cautious on purpose: a wrong guess
silently garbles every accented title and path. (charset-normalizer alone was tried first: on a
catalog with a few accented titles its best guess varied between cp1250, hp_roman8 and mac_iceland.)
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

from scorer.errors import UsageError

CHUNK = 1 << 20
SAMPLE = 64 << 10  # bytes of non-ASCII lines looked at
FALLBACK = "cp1252"
#: share of runs of non-ASCII bytes that must be one or two bytes long for the text to pass as Latin script
LATIN_SHARE = 0.9
_HIGH_RUN = re.compile(rb"[\x80-\xff]+")
#: a well-formed 2-, 3- or 4-byte UTF-8 sequence: in a file that has one, a bad byte is damage, not a code page
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class Encoding:
    name: str  # a Python codec name
    detected: bool = False  # guessed from the bytes, not UTF-8 and not given


@dataclass(frozen=True)
class _Bad:
    offset: int  # of the first undecodable byte
    byte: int
    reason: str


def file_encoding(path: Path, given: str | Encoding | None = None) -> Encoding:
    """How to read ``path`` as text; :class:`UsageError` when it cannot be read as any (see module doc).
    An :class:`Encoding` this function already returned for the file is taken as it is: the file is not
    read again."""
    if isinstance(given, Encoding):
        return given
    if given:
        try:
            name = codecs.lookup(given).name
        except LookupError:
            raise UsageError(f"--encoding {given}: unknown encoding; give a name such as utf-8, cp1252, latin-1 "
                             "or utf-16") from None
        if (bad := _first_bad(path, name)) is not None:
            raise UsageError(_message(path, name, bad, given=True))
        return Encoding(name)
    with open(path, "rb") as f:
        head = f.read(4)
    for bom, name in _BOMS:
        if head.startswith(bom):
            if (bad := _first_bad(path, name)) is not None:  # a mark, then bytes that are not that encoding
                raise UsageError(_message(path, f"{name} (as its byte-order mark says)", bad, given=True))
            return Encoding(name)
    bad = _first_bad(path, "utf-8")
    if bad is None:
        return Encoding("utf-8")
    sample, has_utf8 = _scan(path)
    if not has_utf8 and _looks_latin(sample) and _first_bad(path, FALLBACK) is None:
        return Encoding(FALLBACK, detected=True)
    raise UsageError(_message(path, "utf-8", bad, given=False, guess=_guess(sample)))


def _looks_latin(sample: bytes) -> bool:
    runs = [len(m) for m in _HIGH_RUN.findall(sample)]
    return bool(runs) and sum(n <= 2 for n in runs) >= LATIN_SHARE * len(runs)


def _scan(path: Path) -> tuple[bytes, bool]:
    """Lines with non-ASCII bytes (up to :data:`SAMPLE`), and whether any well-formed UTF-8 sequence occurs."""
    sample, has_utf8 = bytearray(), False
    with open(path, "rb") as f:
        for line in f:
            if line.isascii():
                continue
            has_utf8 = has_utf8 or _UTF8_SEQUENCE.search(line) is not None
            if len(sample) < SAMPLE:
                sample += line[:SAMPLE]
    return bytes(sample), has_utf8


def _guess(sample: bytes) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best() if sample else None
    if best is None:
        return None
    try:
        return codecs.lookup(best.encoding).name.replace("-", "_")
    except LookupError:
        return None


def _first_bad(path: Path, encoding: str) -> _Bad | None:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            pending = len(decoder.getstate()[0])  # bytes of a character cut at the last block's end
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                start = offset - pending if len(e.object) == pending + len(block) else offset
                return _Bad(start + e.start, e.object[e.start] if e.start < len(e.object) else 0, e.reason)
            if not block:
                return None
            offset += len(block)


def _line_of(path: Path, offset: int) -> int:
    """1-based line number of the byte at ``offset``."""
    line, done = 1, 0
    with open(path, "rb") as f:
        while done < offset:
            block = f.read(min(CHUNK, offset - done))
            if not block:
                break
            line += block.count(b"\n")
            done += len(block)
    return line


def _message(path: Path, encoding: str, bad: _Bad, given: bool, guess: str | None = None) -> str:
    line = _line_of(path, bad.offset)
    where = f"{path}, line {line} (byte {bad.offset + 1}): byte 0x{bad.byte:02x} is not {encoding}"
    if given:
        return f"{where} ({bad.reason}); give the encoding the file was saved in with --encoding"
    hint = f"; charset-normalizer guesses {guess}" if guess else ""
    return (f"{where}{hint}. Give the encoding it was saved in with --encoding (a Western Windows spreadsheet "
            "saves cp1252), or save it as UTF-8")
