"""Labelled cover sets: a folder with one sub-folder per genre, or a CSV with ``path,genre``.

Images are hashed by content and deduplicated before anything is split: a cover filed twice
would otherwise sit on both sides of a fold and inflate the scores.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

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


def load_labelled(source: Path) -> Dataset:
    """Read a labelled set; raise ``ValueError`` with a clear message when it is not one."""
    source = Path(source)
    if source.is_dir():
        pairs = _from_folder(source)
    elif source.suffix.lower() == ".csv" and source.is_file():
        pairs = _from_csv(source)
    else:
        raise ValueError(f"{source}: expected a folder with one sub-folder per genre, or a CSV with path,genre columns")
    if not pairs:
        raise ValueError(f"{source}: no labelled images found")
    return deduplicate(pairs)


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
