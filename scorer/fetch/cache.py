"""On-disk cover cache: content-addressed blobs plus a per-URL index of validators.

``blobs/ab/<sha256>`` holds the bytes of every cover ever fetched, once per distinct content;
``urls/cd/<sha256 of URL>.json`` says which blob a URL served last, and how to revalidate it
(``ETag``, ``Last-Modified``) or until when it needs no revalidation at all (``Cache-Control:
max-age`` / ``immutable``, and Spotify's ``i.scdn.co/image/<hash>`` URLs, whose content never
changes). Every file is written to a temporary name and renamed into place, so a killed run
never leaves a half-written entry behind, and concurrent runs can share one cache.

The cache is bounded on the disk (``--cache-max-size``, ``SCORER_CACHE_MAX_SIZE``, default 10 GB), as
``du`` counts it: the blocks of every file (a 1 kB cover takes a whole block), index entry, folder,
temporary, the lock and the ledger. Every write holds the lock shared by all runs on the cache
(``.prune.lock``) and its ledger (``.usage``, the running total): a write that could take the folder
past the bound (its blocks, one for its folder growing, one per new folder) first deletes the least
recently used files (a hit touches a file's mtime) and the folders they empty, down to 80% of it less
the write; the ledger then gets what the write took (``st_blocks`` before and after). So runs sharing a
cache stay under the bound together. A prune walks the folder, sets the ledger to what it finds and
deletes a killed run's temporaries (under the lock no write is in flight). A run that finds a file gone
under it (another run pruned it) fetches the cover again, so pruning is safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, overload

from scorer.files import atomic_write
from scorer.locks import file_lock

#: URLs whose content is fixed by the URL itself: a hit never goes to the network.
IMMUTABLE_URL = re.compile(r"^https?://i\.scdn\.co/image/[0-9a-f]+$", re.IGNORECASE)
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)
FOREVER = float("inf")
DEFAULT_MAX_BYTES = 10 * 1000**3
LOW_WATER = 0.8  # a prune goes down to this share of the bound, so that it is not needed again at once
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


@overload
def parse_size(text: str | int) -> int: ...


@overload
def parse_size(text: None) -> None: ...


def parse_size(text: str | int | None) -> int | None:
    """``20GB``, ``500 MB``, ``1.5GiB``, ``12345`` → bytes; None for None. ValueError otherwise."""
    if text is None or isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        from scorer.errors import UsageError  # a ValueError that the CLI says in one line

        raise UsageError(f"{text!r} is not a size; give e.g. 20GB, 500MB or 1.5GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def default_max_bytes() -> int:
    """``$SCORER_CACHE_MAX_SIZE`` or 10 GB."""
    env = os.environ.get("SCORER_CACHE_MAX_SIZE")
    if not env:
        return DEFAULT_MAX_BYTES
    try:
        return parse_size(env)
    except ValueError as e:
        raise type(e)(f"SCORER_CACHE_MAX_SIZE: {e}") from None


@dataclass(frozen=True)
class Usage:
    """Cached files; ``disk``: bytes allocated on the disk (blocks, index, folders, temporaries: what ``du``
    counts, and what the bound is on); ``bytes``: the files' own sizes."""

    files: int
    disk: int
    bytes: int


def default_cache_root() -> Path:
    """``$SCORER_CACHE_DIR``, else ``$XDG_CACHE_HOME/scorer``, else ``~/.cache/scorer``."""
    base = os.environ.get("SCORER_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "scorer")
    return Path(base)


@dataclass
class Entry:
    url: str
    sha256: str
    etag: str | None = None
    last_modified: str | None = None
    fresh_until: float = 0.0  # epoch seconds; inf for immutable content
    stored_at: float = 0.0

    def is_fresh(self, now: float | None = None) -> bool:
        return (now or time.time()) < self.fresh_until

    def validators(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


def freshness(url: str, cache_control: str | None, now: float) -> float:
    """Until when a response may be reused without asking the server again."""
    if IMMUTABLE_URL.match(url):
        return FOREVER
    cc = (cache_control or "").lower()
    if "no-store" in cc or "no-cache" in cc:
        return 0.0
    if "immutable" in cc:
        return FOREVER
    m = _MAX_AGE.search(cc)
    return now + int(m.group(1)) if m else 0.0


_TEMP = re.compile(r"^\..+\.tmp$")  # atomic_write's temporaries, ``.<name>.<random>.tmp``
LOCK, LEDGER = ".prune.lock", ".usage"


def _allocated(paths: list[str]) -> tuple[int, set[str]]:
    """Bytes the disk has allocated to ``paths`` (``st_blocks``, what ``du`` counts), and those that do not exist."""
    total, missing = 0, set()
    for path in paths:
        try:
            total += os.lstat(path).st_blocks * 512
        except OSError:
            missing.add(path)
    return total, missing


class _Ledger:
    """The running total of a cache's bytes on the disk, in ``.usage``; open while the lock is held. Fixed width
    and rewritten in place, so that its own block never changes; created as unknown (a walk counts the cache)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        text = os.pread(self.fd, 64, 0).decode(errors="replace").strip()
        if not text:
            os.pwrite(self.fd, f"{'?':>20}\n".encode(), 0)
        self.total = int(text) if text.isdigit() else None

    def set(self, total: int) -> int:
        os.pwrite(self.fd, f"{total:20d}\n".encode(), 0)
        self.total = total
        return total


@dataclass
class _Scan:
    """One walk of a folder: what it takes on the disk, its cached files, and its folders."""

    disk: int = 0  # allocated bytes of everything under the root, the root included (``du -s``)
    files: list[tuple[float, int, int, str]] = field(default_factory=list)  # (mtime, allocated, size, path)
    folders: dict[str, list[int]] = field(default_factory=dict)  # path -> [entries, allocated bytes]


def _scan(root: Path, clean: bool = False, skip: tuple[str, ...] = ()) -> _Scan:
    """Walk ``root``. Dot-files (the lock, the ledger, temporaries) count on the disk but are not cached files;
    ``clean`` deletes temporaries (only under the lock, when no write is in flight: a killed run's); ``skip``:
    folders of the root not to walk."""
    scan = _Scan()
    for dirpath, dirnames, names in os.walk(root):
        if dirpath == str(root):
            dirnames[:] = [d for d in dirnames if d not in skip]
        try:
            allocated = os.lstat(dirpath).st_blocks * 512
        except OSError:
            continue
        entries = len(dirnames)
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                if clean and _TEMP.match(name):
                    os.unlink(path)
                    continue
                st = os.lstat(path)
            except OSError:
                continue
            entries += 1
            scan.disk += st.st_blocks * 512
            if not name.startswith("."):
                scan.files.append((st.st_mtime, st.st_blocks * 512, st.st_size, path))
        scan.disk += allocated
        scan.folders[dirpath] = [entries, allocated]
    return scan


class CoverCache:
    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        """``max_bytes``: the bound on the disk (None: unbounded)."""
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._block: int | None = None
        self._lock = threading.Lock()
        self.pruned = Usage(0, 0, 0)  # what this process's prunes deleted

    @classmethod
    def default(cls, max_bytes: int | None = None) -> CoverCache:
        return cls(default_cache_root() / "covers", max_bytes if max_bytes is not None else default_max_bytes())

    # ------------------------------------------------------------------ the bound
    def usage(self) -> Usage:
        """Cached files, what the folder takes on the disk (``du -s``) and their bytes, walked now."""
        scan = _scan(self.root)
        return Usage(len(scan.files), scan.disk, sum(f[2] for f in scan.files))

    def _block_size(self) -> int:
        if self._block is None:
            where = self.root
            while not where.exists() and where != where.parent:
                where = where.parent
            try:
                self._block = os.statvfs(where).f_frsize or 4096
            except OSError:
                self._block = 4096
        return self._block

    @contextlib.contextmanager
    def _locked(self) -> Iterator[_Ledger]:
        """The lock shared by every run on this cache, and its ledger."""
        with self._lock, file_lock(self.root / LOCK):
            ledger = _Ledger(self.root / LEDGER)
            try:
                yield ledger
            finally:
                os.close(ledger.fd)

    def _prune_locked(self, ledger: _Ledger, target: int) -> int:
        """Under the lock: delete temporaries of killed runs, then the least recently used files and the
        folders they leave empty (never the root) until at most ``target`` bytes are allocated; the bytes left."""
        scan = _scan(self.root, clean=True)  # the ledger, open, is counted
        total, gone, logical = scan.disk, 0, 0
        for _, allocated, size, path in sorted(scan.files):
            if total <= target:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                gone += 1
                logical += size
            total -= allocated + self._drop_empty(path, scan.folders)
        self.pruned = Usage(self.pruned.files + gone, self.pruned.disk + scan.disk - total,
                            self.pruned.bytes + logical)
        return ledger.set(total)

    def _drop_empty(self, path: str, folders: dict[str, list[int]]) -> int:
        """``path`` is gone: remove the folders that leaves empty, up to the root; their allocated bytes."""
        freed, folder, root = 0, os.path.dirname(path), str(self.root)
        while folder != root and folder in folders:
            folders[folder][0] -= 1
            if folders[folder][0] > 0:
                break
            try:
                os.rmdir(folder)
            except OSError:
                break
            freed += folders[folder][1]
            folder = os.path.dirname(folder)
        return freed

    def prune(self, target: int) -> int:
        """Delete the least recently used files until at most ``target`` bytes are allocated on the disk; the
        bytes left. Under the lock shared by every run on this cache."""
        with self._locked() as ledger:
            return self._prune_locked(ledger, target)

    def _write(self, *files: tuple[Path, bytes, bool]) -> bool:
        """Write each ``(path, data, replace)`` atomically within the bound under one lock, counting what it takes
        on the disk; False at the first that can never fit. ``replace=False`` keeps an existing file as it is."""
        if self.max_bytes is not None and any(len(data) > self.max_bytes * LOW_WATER for _, data, _ in files):
            return False
        with self._locked() as ledger:
            return all(self._put(ledger, *file) for file in files)

    def _put(self, ledger: _Ledger, path: Path, data: bytes, replace: bool) -> bool:
        block, bound = self._block_size(), self.max_bytes
        paths = [str(path)]  # the file and its folders up to the root: what a write changes on the disk
        while paths[-1] != str(self.root):
            paths.append(os.path.dirname(paths[-1]))
        before, missing = _allocated(paths)
        if not replace and paths[0] not in missing:
            return True
        # at most: its blocks, one more for its folder growing (or an extent block), a block per new folder
        need = -(-len(data) // block) * block + block * (1 + len(missing - {paths[0]}))
        total = ledger.total
        if total is None:  # a cache from before the ledger, or one cleared: walk it
            total = self._prune_locked(ledger, sys.maxsize)
        if bound is not None and total + need > bound:
            total = self._prune_locked(ledger, int(bound * LOW_WATER) - need)
            if total + need > bound:
                return False
        ledger.set(total + need)  # a run killed while writing leaves the ledger high, never low
        try:
            atomic_write(path, data)
        finally:
            total += _allocated(paths)[0] - before
            if bound is not None and total > bound:  # it took more than foreseen: prune now
                total = self._prune_locked(ledger, int(bound * LOW_WATER))
            ledger.set(total)
        return True

    def blob_path(self, sha: str) -> Path:
        return self.root / "blobs" / sha[:2] / sha

    def _entry_path(self, url: str) -> Path:
        key = hashlib.sha256(url.encode()).hexdigest()
        return self.root / "urls" / key[:2] / f"{key}.json"

    def lookup(self, url: str) -> tuple[Entry, bytes] | None:
        """The cached entry and bytes for ``url``, or None (missing, damaged or blob gone)."""
        try:
            entry = Entry(**json.loads(self._entry_path(url).read_text()))
            data = self.blob_path(entry.sha256).read_bytes()
        except (OSError, ValueError, TypeError):
            return None
        if entry.url != url or hashlib.sha256(data).hexdigest() != entry.sha256:
            return None  # hash collision on the index name, or a damaged blob: refetch
        with contextlib.suppress(OSError):  # used now: the last to be pruned
            os.utime(self.blob_path(entry.sha256))
            os.utime(self._entry_path(url))
        return entry, data

    def store(self, url: str, data: bytes, etag: str | None = None, last_modified: str | None = None,
              cache_control: str | None = None) -> Entry | None:
        """Keep ``data`` as what ``url`` serves; None when it is larger than the cache could ever hold."""
        now = time.time()
        sha = hashlib.sha256(data).hexdigest()
        entry = Entry(url, sha, etag, last_modified, freshness(url, cache_control, now), now)
        index = (self._entry_path(url), json.dumps(asdict(entry)).encode(), True)
        if self._touch_blob(sha):
            return entry if self._write(index) else None
        return entry if self._write((self.blob_path(sha), data, False), index) else None

    def touch(self, entry: Entry, cache_control: str | None = None) -> None:
        """Rewrite ``entry`` (after a 304, with the new freshness)."""
        if cache_control is not None:
            entry.fresh_until = freshness(entry.url, cache_control, time.time())
        self._write((self._entry_path(entry.url), json.dumps(asdict(entry)).encode(), True))

    def _touch_blob(self, sha: str) -> bool:
        """Whether the blob is there (then used now: the last to be pruned)."""
        with contextlib.suppress(OSError):
            os.utime(self.blob_path(sha))
            return True
        return False

    def put_blob(self, data: bytes) -> str | None:
        """The blob's hash, once stored; None when it is larger than the cache could ever hold."""
        sha = hashlib.sha256(data).hexdigest()
        return sha if self._touch_blob(sha) or self._write((self.blob_path(sha), data, False)) else None


#: what lives under the cache root, beside the covers: (folder, what it is, whether --all clears it)
PARTS = (("covers", "fetched covers (bounded: --cache-max-size)"),
         ("features", "training features by image and featurizer (recomputed when gone)"),
         ("finetune", "fine-tuning checkpoints of runs that did not finish (resumed from)"),
         ("cv", "finished splits of fine-tuning cross-validations (resumed from)"))


def cache_report(root: Path | None = None) -> dict:
    """Files and size of each part of the cache, and the covers' bound. ``bytes``: allocated on the disk (what
    ``du -s -B1`` says of the folder); ``logical_bytes``: the files' own sizes."""
    root = Path(root) if root else default_cache_root()
    parts: dict[str, dict[str, Any]] = {}
    for name, what in PARTS:
        u = CoverCache(root / name).usage()
        parts[name] = {"files": u.files, "bytes": u.disk, "logical_bytes": u.bytes, "what": what}
    rest = _scan(root, skip=tuple(name for name, _ in PARTS)).disk  # the root folder itself, its locks
    return {"root": str(root), "parts": parts, "covers_max_bytes": default_max_bytes(),
            "bytes": rest + sum(p["bytes"] for p in parts.values()),
            "logical_bytes": sum(p["logical_bytes"] for p in parts.values())}


def clear_cache(root: Path | None = None, everything: bool = False) -> Usage:
    """Delete the cached covers and features (``everything``: also checkpoints and saved CV splits)."""
    import shutil

    root = Path(root) if root else default_cache_root()
    names = [name for name, _ in PARTS] if everything else ["covers", "features"]
    files = disk = size = 0
    for name in names:
        u = CoverCache(root / name).usage()
        files, disk, size = files + u.files, disk + u.disk, size + u.bytes
        shutil.rmtree(root / name, ignore_errors=True)
    return Usage(files, disk, size)
