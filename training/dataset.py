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


@dataclass
class Dataset:
    examples: list[Example]
    genres: list[str]
    dropped_duplicates: int = 0
    dropped_conflicts: int = 0
    unfetched: Counter = field(default_factory=Counter)  # link files: failed covers by status

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


def load_labelled(source: Path, fetch: FetchOptions | None = None) -> Dataset:
    """Read a labelled set; raise ``ValueError`` with a clear message when it is not one."""
    source = Path(source)
    unfetched: Counter = Counter()
    if source.is_dir():
        pairs = _from_folder(source)
    elif source.suffix.lower() == ".csv" and source.is_file():
        pairs = _from_csv(source)
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


def _from_csv(path: Path) -> list[tuple[Path, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "genre"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; need path,genre")
        rows = [(r["path"], r["genre"].strip()) for r in reader]
    base = path.parent
    return [((base / p) if not Path(p).is_absolute() else Path(p), g) for p, g in rows if p and g]


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


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def deduplicate(pairs: list[tuple[Path, str]]) -> Dataset:
    """Keep one file per content hash; drop every copy of a cover filed under two genres."""
    groups: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    for path, genre in pairs:
        groups[file_sha256(path)].append((path, genre))
    examples, dup, conflict = [], 0, 0
    for sha, members in groups.items():
        if len({g for _, g in members}) > 1:
            conflict += len(members)
            continue
        dup += len(members) - 1
        path, genre = members[0]
        examples.append(Example(str(path), genre, sha))
    examples.sort(key=lambda e: (e.genre, e.path))
    genres = sorted({e.genre for e in examples})
    return Dataset(examples, genres, dropped_duplicates=dup, dropped_conflicts=conflict)
