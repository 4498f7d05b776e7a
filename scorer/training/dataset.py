"""Labelled cover sets: a folder with one sub-folder per genre (or with a ``labels.csv``), a CSV with ``path,genre``,
or a Bandcamp-study link file (``<URL><TAB><genre>/<id>.jpg``), whose covers are fetched into the cover cache
first and read from there. Several sets (one per store) load as one, each cover remembering its set.

Every cover is read and decoded here, before anything else (:func:`check_covers`): a row or file that
cannot be used is left out and counted by reason (:attr:`Dataset.skipped`); an input that cannot be used
as a whole is one :class:`~scorer.errors.UsageError`.

Images are hashed by content and deduplicated before anything is split: a cover filed twice
would otherwise sit on both sides of a fold and inflate the scores.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from scorer.decode import decode_image
from scorer.errors import InputNotFound, RowError, UsageError
from scorer.fetch import CoverCache, CoverFetcher, FetchOptions
from scorer.progress import progress
from scorer.sources.linkfile import LINK_SUFFIXES, read_links
from scorer.sources.rows import MAX_FIELD

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
#: why a row or file was left out (:attr:`Dataset.skipped`'s keys), as the summary says it
SKIP_REASONS = {"missing": "file not found", "unreadable": "file not readable", "not_an_image": "not an image",
                "damaged": "damaged image", "too_large": "over the pixel limit", "bad_line": "broken CSV line",
                "no_path": "empty path", "no_genre": "empty genre", "empty_folder": "empty genre folder"}
#: how many left-out rows a summary names
SHOWN = 5
#: pixels the check decodes each cover to (JPEGs decode at a reduced scale: cheap)
CHECK_SIZE = 32
_INPUTS = ("expected a folder with one sub-folder per genre, a CSV with path,genre columns, or a link file "
           "(.tsv: <cover URL><TAB><genre>/<album_id>.jpg)")


@dataclass(frozen=True)
class _Row:
    """One cover as an input gives it, with where it was given (``labels.csv line 4``, a file, a URL)."""

    path: Path
    genre: str
    group: str | None
    sub: str  # the ``source`` column's value, "" without one
    where: str  # names the file too: ``labels.csv line 4: covers/a.jpg``
    source: str = ""  # the input's name
    fault: tuple[str, str] | None = None  # why it is left out, found while reading: (reason, what)


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
    #: rows and files left out, by reason (:data:`SKIP_REASONS`), and the first few of them named
    skipped: Counter = field(default_factory=Counter)
    skipped_first: list[str] = field(default_factory=list)

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
        n = Counter(e.genre for e in self.examples)
        return {g: n[g] for g in self.genres}

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
                  group_by: str | None = None, near_duplicates: bool = True, folds: int | None = None) -> Dataset:
    """Read one labelled set, or several (one per store, say) as one; a one-line :class:`UsageError` when an
    input cannot be used as a whole; rows and files that cannot be used are left out and counted
    (:attr:`Dataset.skipped`). With ``folds`` (0 for none), fewer than two genres, or a genre of fewer than
    ``folds`` covers, is a :class:`UsageError` too, raised before the grouping.

    Every cover is grouped for the folds (:mod:`scorer.training.groups`): near-duplicate covers are one
    group (unless ``near_duplicates`` is false), and with ``group_by`` (a CSV column such as
    ``artist``; a folder's ``labels.csv`` is read as its CSV) so are covers with one value of it.
    An empty value, or an input without that column, means unknown: grouped by near-duplicates only.
    """
    sources = [Path(source)] if isinstance(source, (str, Path)) else [Path(s) for s in source]
    if not sources:
        raise UsageError("no labelled covers given; " + _INPUTS)
    unfetched: Counter = Counter()
    rows: list[_Row] = []
    without_column = []
    for src, name in zip(sources, source_names(sources)):
        got, failed, has_column = _read_source(src, fetch, group_by)
        unfetched += failed
        if group_by and not has_column:
            without_column.append(name)
        rows += [replace(row, source=name) for row in got]
    if group_by and len(without_column) == len(sources):
        raise UsageError(f"--group-by {group_by}: no input has a {group_by} column (it is read from a CSV "
                         f"with path,genre,{group_by} columns, or from a folder's labels.csv)")
    kept, shas, skipped, first = check_covers(rows)
    pairs = [(r.path, r.genre, r.group, r.source, f"{r.source}/{r.sub}" if r.sub else r.source) for r in kept]
    if not pairs:
        fetched = f"; {sum(unfetched.values())} could not be fetched ({dict(unfetched)})" if unfetched else ""
        left = f"; left out {_reasons(skipped)}; first: {'; '.join(first)}" if skipped else ""
        raise UsageError(f"{', '.join(map(str, sources))}: no labelled images found{left}{fetched}; "
                         f"check the paths and files")
    dataset = deduplicate(pairs, shas)
    dataset.unfetched = unfetched
    dataset.inputs = source_names(sources)
    dataset.skipped, dataset.skipped_first = skipped, first
    if folds is not None:
        check_genres(dataset, folds, ", ".join(map(str, sources)))
    from scorer.training.groups import leak_free_groups

    grouping = leak_free_groups(dataset.examples, near_duplicates=near_duplicates, by_artist=bool(group_by))
    dataset.group_ids = grouping.groups
    dataset.grouping = {**({"group_by": group_by, "inputs_without_column": without_column} if group_by else {}),
                        **grouping.stats}
    return dataset


def check_genres(dataset: Dataset, folds: int, names: str) -> None:
    """Two genres at least, and ``folds`` covers of each (one at least): a :class:`UsageError` otherwise."""
    left = f" ({sum(dataset.skipped.values())} left out: {_reasons(dataset.skipped)})" if dataset.skipped else ""
    if len(dataset.genres) < 2:
        raise UsageError(f"{names}: need at least two genres, found {len(dataset.genres)} {dataset.genres}{left}; "
                         f"add covers of another genre")
    need = max(folds, 1)
    small = {g: n for g, n in dataset.counts().items() if n < need}
    if small:
        g, n = min(small.items(), key=lambda kv: (kv[1], kv[0]))
        others = f" (and {len(small) - 1} other genre(s) too few)" if len(small) > 1 else ""
        raise UsageError(f"{names}: genre {g!r} has {n} cover(s){others}{left}; --folds {folds} needs at least "
                         f"{need} of each genre: add covers of it, remove it, or lower --folds")


def _reasons(counts: Counter) -> str:
    return ", ".join(f"{n} {SKIP_REASONS[r]}" for r, n in counts.most_common())


def check_covers(rows: list[_Row]) -> tuple[list[_Row], list[str], Counter, list[str]]:
    """The rows whose file reads and decodes (through :func:`scorer.decode.decode_image`, as scoring does),
    their content hashes, and the others: counted by reason (:data:`SKIP_REASONS`), the first :data:`SHOWN`
    named. Each file is read once; one whose content has perceptual hashes cached decoded then: not again."""
    from scorer.training.feature_cache import FeatureCache, default_cache_dir
    from scorer.training.groups import HASHES_ID

    hashed = FeatureCache(default_cache_dir(), HASHES_ID)
    kept: list[_Row] = []
    shas: list[str] = []
    counts: Counter[str] = Counter()
    first: list[str] = []

    def skip(reason: str, where: str, what: str) -> None:
        counts[reason] += 1
        if len(first) < SHOWN:
            first.append(f"{where}: {what}")

    with progress("checking covers", total=len(rows)) as advance:
        for row in rows:
            if row.fault:
                skip(row.fault[0], row.where, row.fault[1])
                continue
            try:
                data = row.path.read_bytes()
            except FileNotFoundError:
                skip("missing", row.where, "no such file")
            except IsADirectoryError:
                skip("unreadable", row.where, "a folder, not an image file")
            except OSError as e:
                skip("unreadable", row.where, e.strerror or str(e))
            except ValueError as e:  # a path with a NUL byte
                skip("unreadable", row.where, f"not a file path ({e})")
            else:
                sha = hashlib.sha256(data).hexdigest()
                try:
                    if not hashed.path(sha).is_file():
                        decode_image(data, size=CHECK_SIZE)
                except RowError as e:
                    reason = {"not_an_image": "not_an_image", "too_large": "too_large"}.get(e.code, "damaged")
                    skip(reason, row.where, e.message)
                else:
                    kept.append(row)
                    shas.append(sha)
            advance(1)
    return kept, shas, counts, first


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
                 ) -> tuple[list[_Row], Counter, bool]:
    """The rows of one input, its fetch failures, and whether it has ``group_by``."""
    if source.is_dir() and _is_labels_csv(source / "labels.csv"):
        source = source / "labels.csv"
    if source.is_dir():
        return _from_folder(source), Counter(), False
    if source.suffix.lower() == ".csv" and source.is_file():
        return _from_csv(source, group_by)
    if source.suffix.lower() in LINK_SUFFIXES and source.is_file():
        rows, failed = _from_links(source, fetch or FetchOptions())
        return rows, failed, False
    if not source.exists():
        raise InputNotFound(f"{source}: no such file or folder; {_INPUTS}", str(source))
    raise UsageError(f"{source}: {_INPUTS}")


def _is_labels_csv(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error):
        return False
    return {"path", "genre"} <= {h.strip() for h in header}


def _from_folder(root: Path) -> list[_Row]:
    rows = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = [f for f in sorted(sub.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            rows.append(_Row(sub, sub.name, None, "", str(sub), fault=("empty_folder", "no image files in it")))
        rows += [_Row(f, sub.name, None, "", str(f)) for f in files]
    return rows


def _from_csv(path: Path, group_by: str | None) -> tuple[list[_Row], Counter, bool]:
    """The rows of a ``path,genre`` CSV (paths relative to its folder). A line with the wrong number of fields or an
    empty path or genre is left out and counted; an open quote, a field over the catalogs' limit or text that is
    not UTF-8 is a :class:`UsageError` naming the line."""
    line = 1
    csv.field_size_limit(MAX_FIELD)  # as the catalog reader sets it: the limit is the process's, whoever ran first
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in ("path", "genre") if c not in header]
            if missing:
                raise UsageError(f"{path}: no {' and no '.join(missing)} column (line 1 names "
                                 f"{','.join(header) or 'nothing'}); the first line must name the path and "
                                 f"genre columns: path,genre")
            column = {name: header.index(name) for name in ("path", "genre", group_by or "", "source")
                      if name in header}
            rows = []
            for record in reader:
                line, end = line + 1, reader.line_num
                if any("\n" in v or "\r" in v for v in record):
                    raise UsageError(f"{path} line {line}: a quote opens a field here and is never closed, so it "
                                     f"takes in the lines after it; close it or remove it")
                row = _csv_row(path, record, column, len(header), f"{path} line {line}")
                if row is not None:
                    rows.append(row)
                line = end
    except UnicodeDecodeError:
        raise UsageError(f"{path} line {_first_not_utf8(path)}: not UTF-8 text; save the CSV as UTF-8") from None
    except csv.Error as e:
        raise UsageError(f"{path} line {line + 1}: not a readable CSV line ({e}); fix the line") from None
    return rows, Counter(), bool(group_by) and group_by in column


def _first_not_utf8(path: Path) -> int:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def _csv_row(path: Path, record: list[str], column: dict[str, int], fields: int, where: str) -> _Row | None:
    if not record or not any(v.strip() for v in record):
        return None  # a blank line
    if len(record) != fields:
        return _Row(path, "", None, "", where, fault=("bad_line", f"{len(record)} field(s), the header has {fields}"))
    file, genre = record[column["path"]].strip(), record[column["genre"]].strip()
    if not file or not genre:
        fault = ("no_path", "the path is empty") if not file else ("no_genre", "the genre is empty")
        return _Row(path, genre, None, "", f"{where}: {file}" if file else where, fault=fault)
    group = next((record[i].strip() for k, i in column.items() if k not in ("path", "genre", "source")), None)
    sub = record[column["source"]].strip() if "source" in column else ""
    full = Path(file) if Path(file).is_absolute() else path.parent / file
    return _Row(full, genre, group, sub, f"{where}: {file}")


def _from_links(path: Path, fetch: FetchOptions) -> tuple[list[_Row], Counter]:
    """Fetch every cover of a link file into the cover cache; covers that fail are left out and counted."""
    links = read_links(path)
    # the files must outlive the run, as training reads them by path: this run does not prune the cache
    cache = CoverCache(CoverCache.default().root, max_bytes=None)
    rows: list[_Row] = []
    failed: Counter[str] = Counter()
    with CoverFetcher(fetch, cache=cache) as fetcher, progress("fetching", total=len(links)) as advance:
        for link, got in fetcher.stream(links, lambda x: x.url):
            if isinstance(got, bytes):
                sha = cache.put_blob(got)
                assert sha is not None  # the cache has no size limit: every blob fits
                rows.append(_Row(cache.blob_path(sha), link.genre, None, "", f"{path}: {link.url}"))
            else:
                assert isinstance(got, RowError)  # a link is a URL or a path: bytes or the error
                failed[got.code] += 1
            advance(1)
    return rows, failed


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def deduplicate(pairs: list[tuple], shas: list[str] | None = None) -> Dataset:
    """Keep one file per content hash; drop every copy of a cover filed under two genres.

    ``pairs`` are ``(path, genre[, group[, source[, collection]]])``, ``shas`` their content hashes (read
    from the files when not given); a duplicate keeps its first group, source and collection.
    """
    by_hash: dict[str, list[tuple]] = defaultdict(list)
    for i, pair in enumerate(pairs):
        by_hash[shas[i] if shas is not None else sha256_file(pair[0])].append(pair)
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
