"""Labelled cover sets: a folder with one sub-folder per genre (or with a ``labels.csv``), a CSV
with ``path,genre``, or a Bandcamp-study link file (``<URL><TAB><genre>/<id>.jpg``), whose covers
are fetched into the cover cache first and read from there. Several sets (one per store) load as
one, each cover remembering its set.

Images are hashed by content and deduplicated before anything is split: a cover filed twice
would otherwise sit on both sides of a fold and inflate the scores.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scorer.errors import RowError
from scorer.fetch import CoverCache, CoverFetcher, FetchOptions
from scorer.progress import progress
from scorer.sources.linkfile import LINK_SUFFIXES, read_links

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Example:
    path: str
    genre: str
    sha256: str
    group: str | None = None  # the ``--group-by`` value, e.g. the artist ("" when unknown)
    source: str = ""  # the input it was read from: one store's covers, for per-source figures
    #: the collection it came from: the input, refined by the input's ``source`` column when it has
    #: one (``covers-spotify/tjaarek``); held-out figures leave one collection out at a time
    collection: str = ""


@dataclass
class Dataset:
    examples: list[Example]
    genres: list[str]
    dropped_duplicates: int = 0
    dropped_conflicts: int = 0
    unfetched: Counter = field(default_factory=Counter)  # link files: failed covers by status
    #: leak-free group per cover (near-duplicate clusters, artists): folds never split one
    group_ids: list[str] | None = None
    grouping: dict = field(default_factory=dict)  # what the grouping found (scorer.training.groups)
    inputs: list[str] = field(default_factory=list)  # the inputs' names, in the order given

    @property
    def groups(self) -> list[str] | None:
        return self.group_ids

    @property
    def labels(self) -> list[int]:
        index = {g: i for i, g in enumerate(self.genres)}
        return [index[e.genre] for e in self.examples]

    @property
    def collections(self) -> list[str]:
        """The collections that gave covers, sorted by name."""
        return sorted({e.collection or e.source for e in self.examples})

    @property
    def sources(self) -> list[str]:
        """The inputs that gave covers, in the order they were given."""
        present = {e.source for e in self.examples}
        return [s for s in dict.fromkeys([*self.inputs, *(e.source for e in self.examples)]) if s in present]

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

    def counts_by_source(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {s: {} for s in self.sources}
        for e in self.examples:
            out[e.source][e.genre] = out[e.source].get(e.genre, 0) + 1
        return {s: {g: c[g] for g in self.genres if g in c} for s, c in out.items()}

    def counts_by_collection(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {c: {} for c in self.collections}
        for e in self.examples:
            c = e.collection or e.source
            out[c][e.genre] = out[c].get(e.genre, 0) + 1
        return {c: {g: n[g] for g in self.genres if g in n} for c, n in out.items()}


def load_labelled(source: Path | str | Sequence[Path | str], fetch: FetchOptions | None = None,
                  group_by: str | None = None, near_duplicates: bool = True) -> Dataset:
    """Read one labelled set, or several (one per store, say) as one; raise ``ValueError`` with a
    clear message when one is not a labelled set.

    Every cover is grouped for the folds (:mod:`scorer.training.groups`): near-duplicate covers are one
    group (unless ``near_duplicates`` is false), and with ``group_by`` (a CSV column such as
    ``artist``; a folder's ``labels.csv`` is read as its CSV) so are covers with one value of it.
    An empty value, or an input without that column, means unknown: grouped by near-duplicates only.
    """
    sources = [Path(source)] if isinstance(source, (str, Path)) else [Path(s) for s in source]
    if not sources:
        raise ValueError("no labelled covers given")
    unfetched: Counter = Counter()
    pairs: list[tuple] = []
    without_column = []
    for src, name in zip(sources, source_names(sources)):
        got, failed, has_column = _read_source(src, fetch, group_by)
        unfetched += failed
        if group_by and not has_column:
            without_column.append(name)
        pairs += [(path, genre, group, name, f"{name}/{sub}" if sub else name) for path, genre, group, sub in got]
    if group_by and len(without_column) == len(sources):
        raise ValueError(f"--group-by {group_by}: no input has a {group_by} column (it is read from a CSV "
                         f"with path,genre,{group_by} columns, or from a folder's labels.csv)")
    if not pairs:
        detail = f" (fetch failures: {dict(unfetched)})" if unfetched else ""
        raise ValueError(f"{', '.join(map(str, sources))}: no labelled images found{detail}")
    dataset = deduplicate(pairs)
    dataset.unfetched = unfetched
    dataset.inputs = source_names(sources)
    from scorer.training.groups import leak_free_groups

    grouping = leak_free_groups(dataset.examples, near_duplicates=near_duplicates, by_artist=bool(group_by))
    dataset.group_ids = grouping.groups
    dataset.grouping = {**({"group_by": group_by, "inputs_without_column": without_column} if group_by else {}),
                        **grouping.stats}
    return dataset


def source_names(sources: list[Path]) -> list[str]:
    """A short name per input: the folder's name (a folder's ``labels.csv`` too), else the file's stem."""
    names: list[str] = []
    for src in sources:
        base = src.parent.name if src.name.lower() == "labels.csv" else (src.name if src.is_dir() else src.stem)
        name, k = base or str(src), 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def _read_source(source: Path, fetch: FetchOptions | None, group_by: str | None
                 ) -> tuple[list[tuple], Counter, bool]:
    """``(path, genre, group, sub-collection)`` of each cover of one input, its fetch failures, and whether
    it has ``group_by``. The sub-collection is the cover's ``source`` column (a CSV's), "" without one."""
    if source.is_dir() and _is_labels_csv(source / "labels.csv"):
        source = source / "labels.csv"
    if source.is_dir():
        return [(p, g, None, "") for p, g in _from_folder(source)], Counter(), False
    if source.suffix.lower() == ".csv" and source.is_file():
        return _from_csv(source, group_by)
    if source.suffix.lower() in LINK_SUFFIXES and source.is_file():
        pairs, failed = _from_links(source, fetch or FetchOptions())
        return [(p, g, None, "") for p, g in pairs], failed, False
    raise ValueError(f"{source}: expected a folder with one sub-folder per genre, a CSV with path,genre "
                     f"columns, or a link file (.tsv: <cover URL><TAB><genre>/<album_id>.jpg)")


def _is_labels_csv(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    return {"path", "genre"} <= set(header)


def _from_folder(root: Path) -> list[tuple[Path, str]]:
    pairs = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        pairs += [(f, sub.name) for f in sorted(sub.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return pairs


def _from_csv(path: Path, group_by: str | None = None) -> tuple[list[tuple], Counter, bool]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        missing = {"path", "genre"} - columns
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; need path,genre")
        has_group = bool(group_by) and group_by in columns
        has_source = "source" in columns
        rows = [(r["path"], (r["genre"] or "").strip(), (r[group_by] or "").strip() if has_group else None,
                 (r["source"] or "").strip() if has_source else "") for r in reader]
    base = path.parent
    return ([((base / p) if not Path(p).is_absolute() else Path(p), g, grp, sub) for p, g, grp, sub in rows
             if p and g], Counter(), has_group)


def _from_links(path: Path, fetch: FetchOptions) -> tuple[list[tuple[Path, str]], Counter]:
    """Fetch every cover of a link file into the cover cache; covers that fail are left out and counted."""
    links = read_links(path)
    # the files must outlive the run, as training reads them by path: this run does not prune the cache
    cache = CoverCache(CoverCache.default().root, max_bytes=None)
    pairs: list[tuple[Path, str]] = []
    failed: Counter[str] = Counter()
    with CoverFetcher(fetch, cache=cache) as fetcher, progress("fetching", total=len(links)) as advance:
        for link, got in fetcher.stream(links, lambda x: x.url):
            if isinstance(got, bytes):
                sha = cache.put_blob(got)
                assert sha is not None  # the cache has no size limit: every blob fits
                pairs.append((cache.blob_path(sha), link.genre))
            else:
                assert isinstance(got, RowError)  # a link is a URL or a path: bytes or the error
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

    ``pairs`` are ``(path, genre[, group[, source[, collection]]])``; a duplicate keeps its first group,
    source and collection.
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
        path, genre, *rest = members[0]
        group, source, collection = (rest + [None, "", ""])[:3]
        examples.append(Example(str(path), genre, sha, group, source or "", collection or source or ""))
    examples.sort(key=lambda e: (e.genre, e.path))
    genres = sorted({e.genre for e in examples})
    return Dataset(examples, genres, dropped_duplicates=dup, dropped_conflicts=conflict)
