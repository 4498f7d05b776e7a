"""Labelled cover sets: a folder with one sub-folder per genre, a CSV with ``path,genre``, or a
Bandcamp-study link file (``<URL><TAB><genre>/<id>.jpg``), whose covers are fetched into the cover
cache first and read from there.

Images are hashed by content and deduplicated before anything is split: a cover filed twice
would otherwise sit on both sides of a fold and inflate the scores.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from scorer.fetch import CoverCache, CoverFetcher, FetchOptions
from scorer.progress import progress
from scorer.sources.linkfile import LINK_SUFFIXES, read_links

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Example:
    path: str
    genre: str
    sha256: str
    group: str | None = None  # e.g. the artist (``--group-by``): folds never split a group


@dataclass
class Dataset:
    examples: list[Example]
    genres: list[str]
    dropped_duplicates: int = 0
    dropped_conflicts: int = 0
    unfetched: Counter = field(default_factory=Counter)  # link files: failed covers by status

    @property
    def groups(self) -> list[str] | None:
        """Each cover's group, when the set was read with ``group_by``."""
        if not self.examples or self.examples[0].group is None:
            return None
        return [e.group for e in self.examples]

    @property
    def labels(self) -> list[int]:
        index = {g: i for i, g in enumerate(self.genres)}
        return [index[e.genre] for e in self.examples]

    def fingerprint(self) -> str:
        """Order-independent hash of (content hash, genre) pairs: identifies the training set."""
        h = hashlib.sha256()
        for sha, genre in sorted((e.sha256, e.genre) for e in self.examples):
            h.update(f"{sha}\t{genre}\n".encode())
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(self.genres, 0)
        for e in self.examples:
            out[e.genre] += 1
        return out


def load_labelled(source: Path, fetch: FetchOptions | None = None, group_by: str | None = None) -> Dataset:
    """Read a labelled set; raise ``ValueError`` with a clear message when it is not one.

    ``group_by`` names a CSV column (e.g. ``artist``) whose value groups covers for the folds.
    """
    source = Path(source)
    unfetched: Counter = Counter()
    is_csv = source.suffix.lower() == ".csv" and source.is_file()
    if group_by and not is_csv:
        raise ValueError(f"--group-by {group_by}: needs a CSV of labelled covers with a {group_by} column")
    if source.is_dir():
        pairs = _from_folder(source)
    elif is_csv:
        pairs = _from_csv(source, group_by)
    elif source.suffix.lower() in LINK_SUFFIXES and source.is_file():
        pairs, unfetched = _from_links(source, fetch or FetchOptions())
    else:
        raise ValueError(f"{source}: expected a folder with one sub-folder per genre, a CSV with path,genre "
                         f"columns, or a link file (.tsv: <cover URL><TAB><genre>/<album_id>.jpg)")
    if not pairs:
        detail = f" (fetch failures: {dict(unfetched)})" if unfetched else ""
        raise ValueError(f"{source}: no labelled images found{detail}")
    dataset = deduplicate(pairs)
    dataset.unfetched = unfetched
    return dataset


def _from_folder(root: Path) -> list[tuple[Path, str]]:
    pairs = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        pairs += [(f, sub.name) for f in sorted(sub.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return pairs


def _from_csv(path: Path, group_by: str | None = None) -> list[tuple]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "genre", *([group_by] if group_by else [])} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; need path,genre"
                             + (f",{group_by} (--group-by)" if group_by else ""))
        rows = [(r["path"], r["genre"].strip(), *([r[group_by].strip()] if group_by else [])) for r in reader]
    if group_by and any(not r[2] for r in rows if r[0] and r[1]):
        raise ValueError(f"{path}: --group-by {group_by}: some rows have an empty {group_by}")
    base = path.parent
    return [((base / r[0]) if not Path(r[0]).is_absolute() else Path(r[0]), *r[1:]) for r in rows if r[0] and r[1]]


def _from_links(path: Path, fetch: FetchOptions) -> tuple[list[tuple[Path, str]], Counter]:
    """Fetch every cover of a link file into the cover cache; covers that fail are left out and counted."""
    links = read_links(path)
    cache = CoverCache.default()  # the files must outlive the run: training reads them by path
    pairs, failed = [], Counter()
    with CoverFetcher(fetch, cache=cache) as fetcher, progress("fetching", total=len(links)) as advance:
        for link, got in fetcher.stream(links, lambda x: x.url):
            if isinstance(got, bytes):
                pairs.append((cache.blob_path(cache.put_blob(got)), link.genre))
            else:
                failed[got.code] += 1
            advance(1)
    return pairs, failed


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def deduplicate(pairs: list[tuple]) -> Dataset:
    """Keep one file per content hash; drop every copy of a cover filed under two genres.

    ``pairs`` are ``(path, genre)`` or ``(path, genre, group)``; a duplicate keeps its first group.
    """
    by_hash: dict[str, list[tuple]] = defaultdict(list)
    for pair in pairs:
        by_hash[sha256_file(pair[0])].append(pair)
    examples, dup, conflict = [], 0, 0
    for sha, members in by_hash.items():
        if len({m[1] for m in members}) > 1:
            conflict += len(members)
            continue
        dup += len(members) - 1
        path, genre, *group = members[0]
        examples.append(Example(str(path), genre, sha, group[0] if group else None))
    examples.sort(key=lambda e: (e.genre, e.path))
    genres = sorted({e.genre for e in examples})
    return Dataset(examples, genres, dropped_duplicates=dup, dropped_conflicts=conflict)
