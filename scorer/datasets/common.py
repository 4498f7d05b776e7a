"""What every labelled-set builder shares: folder names, the output folder's checks and lock, stale temporaries,
covers written under the suffix training reads, and ``labels.csv`` written atomically."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from PIL import Image

from scorer.datasets.journal import LABELS
from scorer.errors import UsageError
from scorer.files import atomic_write
from scorer.locks import Held, file_lock

MAX_PER_GENRE = 100_000
#: covers that can never be used: asked for once, then remembered
UNUSABLE = {"not_an_image", "decode_error", "too_large", "http_4xx", "blocked_address", "bad_url"}
#: this many covers in a row failing for passing reasons (timeouts, 5xx) stops the run: the image host is down
MAX_FAILURES_IN_A_ROW = 20
WINDOW = 4  # covers asked for ahead of the one being written
_EXT = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}


def folder_name(genre: str) -> str:
    """A genre's folder: lowercase letters, digits and dashes (``hip hop`` → ``hip-hop``)."""
    return re.sub(r"[^a-z0-9]+", "-", genre.lower()).strip("-") or "genre"


def check_counts(per_genre: int, per_artist: int) -> None:
    if not 1 <= per_genre <= MAX_PER_GENRE:
        raise UsageError(f"--per-genre {per_genre}: give 1 to {MAX_PER_GENRE}")
    if per_artist < 1:
        raise UsageError(f"--per-artist {per_artist}: give 1 or more")


def check_out(out: Path, journal: str, lock: str) -> None:
    """``out`` is a new folder, an empty one, or a set this builder started (its journal is there)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; give a folder for the set")
    if out.is_dir() and not (out / journal).exists() and any(p.name != lock for p in out.iterdir()):
        raise UsageError(f"--out {out}: that folder has files this command did not write; give a new or empty "
                         "folder (a set this command started is carried on where it stopped)")


@contextlib.contextmanager
def one_run(out: Path, lock: str) -> Iterator[None]:
    """One run per folder: a second one would interleave the journal."""
    try:
        with file_lock(out / lock, wait=False):
            yield
    except Held:
        raise UsageError(f"another scorer dataset run is writing {out}; wait for it to finish") from None


def remove_stale(out: Path) -> None:
    """Temporaries a killed run left; call with the folder's lock held."""
    for stale in [*out.glob(".*.tmp"), *out.glob("*/.*.tmp")]:
        stale.unlink(missing_ok=True)


def write_cover(out: Path, folder: str, stem: str, data: bytes) -> str | None:
    """``data`` written atomically to ``out/folder/stem.<ext>`` under the suffix of its image format; its path
    relative to ``out``, or None when it is not an image Pillow opens in a format training reads."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or ""
    except Exception:  # noqa: BLE001 - the fetcher sniffed the header; anything odd is unusable
        return None
    if fmt not in _EXT:
        return None  # training reads these suffixes only
    rel = f"{folder}/{stem}{_EXT[fmt]}"
    atomic_write(out / rel, data)
    return rel


def write_labels(out: Path, rows: Iterable[dict], columns: Sequence[str]) -> None:
    """``out/labels.csv``: one row per cover, sorted by genre and path."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: (r["genre"], r["path"])))
    atomic_write(out / LABELS, buf.getvalue().encode("utf-8"))
