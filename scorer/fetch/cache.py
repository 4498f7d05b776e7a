"""On-disk cover cache: content-addressed blobs plus a per-URL index of validators.

``blobs/ab/<sha256>`` holds the bytes of every cover ever fetched, once per distinct content;
``urls/cd/<sha256 of URL>.json`` says which blob a URL served last, and how to revalidate it
(``ETag``, ``Last-Modified``) or until when it needs no revalidation at all (``Cache-Control:
max-age`` / ``immutable``, and Spotify's ``i.scdn.co/image/<hash>`` URLs, whose content never
changes). Every file is written to a temporary name and renamed into place, so a killed run
never leaves a half-written entry behind, and concurrent runs can share one cache.

The cache is bounded (``--cache-max-size``, ``SCORER_CACHE_MAX_SIZE``, default 10 GB): before a
write would take it past the bound, the least recently used files (a hit touches a file's mtime)
are deleted until it is at 80% of it. Runs that share the cache prune under a lock; a run that
finds a file gone under it (another run pruned it) fetches the cover again, so pruning is safe.
Each run counts what it adds itself, so several runs at once can overshoot by what they add
between two prunes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import overload

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
    files: int
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


class CoverCache:
    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        """``max_bytes``: the bound (None: unbounded)."""
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._size: int | None = None  # bytes under root, as this process knows it
        self._lock = threading.Lock()
        self.pruned = Usage(0, 0)  # what this process's prunes deleted

    @classmethod
    def default(cls, max_bytes: int | None = None) -> CoverCache:
        return cls(default_cache_root() / "covers", max_bytes if max_bytes is not None else default_max_bytes())

    # ------------------------------------------------------------------ the bound
    def _files(self) -> list[tuple[float, int, str]]:
        """``(mtime, size, path)`` of every cached file; dot-files are the prune lock and files another run is
        still writing (renamed into place soon), neither of them the cache's to count or delete."""
        files = []
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                if name.startswith("."):
                    continue
                path = os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    files.append((st.st_mtime, st.st_size, path))
        return files

    def usage(self) -> Usage:
        files = self._files()
        return Usage(len(files), sum(f[1] for f in files))

    def _reserve(self, n: int) -> bool:
        """Make room for ``n`` more bytes; False when they can never fit (then they are not cached)."""
        if self.max_bytes is None:
            return True
        if n > self.max_bytes * LOW_WATER:
            return False
        with self._lock:
            if self._size is None:
                self._size = self.usage().bytes
            if self._size + n > self.max_bytes:
                self._size = self.prune(int(self.max_bytes * LOW_WATER) - n)
            self._size += n
        return True

    def prune(self, target: int) -> int:
        """Delete the least recently used files until at most ``target`` bytes remain; the bytes left.
        Under a lock shared by every run on this cache (one prune at a time)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / ".prune.lock"):
            files = self._files()
            total = sum(f[1] for f in files)
            gone = freed = 0
            for _, size, path in sorted(files):
                if total - freed <= target:
                    break
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    gone += 1
                    freed += size
            self.pruned = Usage(self.pruned.files + gone, self.pruned.bytes + freed)
            return total - freed

    def clear(self) -> Usage:
        """Delete every cached cover; what was deleted."""
        before = self.usage()
        self.prune(0)
        with self._lock:
            self._size = None
        return before

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
        sha = self.put_blob(data)
        if sha is None:
            return None
        entry = Entry(url, sha, etag, last_modified, freshness(url, cache_control, now), now)
        self.touch(entry)
        return entry

    def touch(self, entry: Entry, cache_control: str | None = None) -> None:
        """Rewrite ``entry`` (after a 304, with the new freshness)."""
        if cache_control is not None:
            entry.fresh_until = freshness(entry.url, cache_control, time.time())
        body = json.dumps(asdict(entry)).encode()
        path = self._entry_path(entry.url)
        if path.exists() or self._reserve(len(body)):
            atomic_write(path, body)

    def put_blob(self, data: bytes) -> str | None:
        """The blob's hash, once stored; None when it is larger than the cache could ever hold."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if path.exists():
            with contextlib.suppress(OSError):
                os.utime(path)
            return sha
        if not self._reserve(len(data)):
            return None
        atomic_write(path, data)
        return sha


#: what lives under the cache root, beside the covers: (folder, what it is, whether --all clears it)
PARTS = (("covers", "fetched covers (bounded: --cache-max-size)"),
         ("features", "training features by image and featurizer (recomputed when gone)"),
         ("finetune", "fine-tuning checkpoints of runs that did not finish (resumed from)"),
         ("cv", "finished splits of fine-tuning cross-validations (resumed from)"))


def cache_report(root: Path | None = None) -> dict:
    """Size and files of each part of the cache, and the covers' bound."""
    root = Path(root) if root else default_cache_root()
    parts = {}
    for name, what in PARTS:
        u = CoverCache(root / name).usage()
        parts[name] = {"files": u.files, "bytes": u.bytes, "what": what}
    return {"root": str(root), "parts": parts, "covers_max_bytes": default_max_bytes(),
            "bytes": sum(p["bytes"] for p in parts.values())}


def clear_cache(root: Path | None = None, everything: bool = False) -> Usage:
    """Delete the cached covers and features (``everything``: also checkpoints and saved CV splits)."""
    import shutil

    root = Path(root) if root else default_cache_root()
    names = [name for name, _ in PARTS] if everything else ["covers", "features"]
    files = size = 0
    for name in names:
        u = CoverCache(root / name).usage()
        files, size = files + u.files, size + u.bytes
        shutil.rmtree(root / name, ignore_errors=True)
    return Usage(files, size)
