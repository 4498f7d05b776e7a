"""Bandcamp-study link files: ``<cover URL><TAB><genre>/<album_id>.<ext>`` per line, no header.

The genre in the second column is the label: ``scorer links`` carries it into the output as
``label``; ``scorer train`` and ``scorer evaluate`` learn from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from scorer.errors import InputNotFound, UsageError
from scorer.sources.text import Encoding, file_encoding

LINK_SUFFIXES = (".tsv",)
_NAME = re.compile(r"^(?P<genre>[^/\s]+)/(?P<album>[^/\s]+?)(?P<ext>\.[A-Za-z0-9]+)?$")
#: Shown in every error, so a user can fix the file without reading the docs.
FORMAT = "each line: <cover URL><TAB><genre>/<album_id>.jpg (tab-separated, no header)"


@dataclass(frozen=True)
class Link:
    url: str
    genre: str
    album_id: str
    name: str  # the second column as written


def parse_link_line(line: str) -> Link:
    """One line (without its newline) → :class:`Link`; ``ValueError`` saying what is wrong."""
    parts = line.rstrip("\r").split("\t")
    if len(parts) != 2:
        raise ValueError(f"expected 2 tab-separated columns, found {len(parts)}")
    url, name = parts[0].strip(), parts[1].strip()
    if not re.match(r"^https?://[^\s/]+/\S*$", url, re.IGNORECASE):
        raise ValueError(f"first column is not an http(s) URL: {url[:80]!r}")
    m = _NAME.match(name)
    if not m:
        raise ValueError(f"second column is not <genre>/<album_id>.jpg: {name[:80]!r}")
    return Link(url, m["genre"], m["album"], name)


def read_links(path: Path, max_errors: int = 5, encoding: str | Encoding | None = None) -> list[Link]:
    """Every link of the file; :class:`UsageError` listing the first bad lines if any. ``encoding`` as
    for catalogs (:func:`scorer.sources.text.file_encoding`: detected when None)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFound(f"{path}: no such file", str(path))
    links: list[Link] = []
    bad: list[str] = []
    n_bad = 0
    codec = file_encoding(path, encoding).name
    with open(path, encoding="utf-8-sig" if codec == "utf-8" else codec, newline="") as f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            try:
                links.append(parse_link_line(line))
            except ValueError as e:
                n_bad += 1
                if len(bad) < max_errors:
                    bad.append(f"line {number}: {e}")
    if n_bad:
        more = f" (and {n_bad - len(bad)} more)" if n_bad > len(bad) else ""
        raise UsageError(f"{path}: {n_bad} malformed line(s){more}; {FORMAT}.\n  " + "\n  ".join(bad))
    if not links:
        raise UsageError(f"{path}: no links; {FORMAT}")
    return links


def links_table(links: list[Link]) -> pa.Table:
    """The rows ``scorer links`` scores: the label and album id travel with each cover URL."""
    return pa.table({
        "cover_url": pa.array([x.url for x in links], pa.string()),
        "label": pa.array([x.genre for x in links], pa.string()),
        "album_id": pa.array([x.album_id for x in links], pa.string()),
        "name": pa.array([x.name for x in links], pa.string()),
    })
