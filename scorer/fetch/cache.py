"""On-disk cover cache: content-addressed blobs plus a per-URL index of validators.

``blobs/ab/<sha256>`` holds the bytes of every cover ever fetched, once per distinct content;
``urls/cd/<sha256 of URL>.json`` says which blob a URL served last, and how to revalidate it
(``ETag``, ``Last-Modified``) or until when it needs no revalidation at all (``Cache-Control:
max-age`` / ``immutable``, and Spotify's ``i.scdn.co/image/<hash>`` URLs, whose content never
changes). Every file is written to a temporary name and renamed into place, so a killed run
never leaves a half-written entry behind, and concurrent runs can share one cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..files import atomic_write

#: URLs whose content is fixed by the URL itself: a hit never goes to the network.
IMMUTABLE_URL = re.compile(r"^https?://i\.scdn\.co/image/[0-9a-f]+$", re.IGNORECASE)
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)
FOREVER = float("inf")


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
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def default(cls) -> CoverCache:
        return cls(default_cache_root() / "covers")

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
        return entry, data

    def store(self, url: str, data: bytes, etag: str | None = None, last_modified: str | None = None,
              cache_control: str | None = None) -> Entry:
        now = time.time()
        sha = self.put_blob(data)
        entry = Entry(url, sha, etag, last_modified, freshness(url, cache_control, now), now)
        self.touch(entry)
        return entry

    def touch(self, entry: Entry, cache_control: str | None = None) -> None:
        """Rewrite ``entry`` (after a 304, with the new freshness)."""
        if cache_control is not None:
            entry.fresh_until = freshness(entry.url, cache_control, time.time())
        atomic_write(self._entry_path(entry.url), json.dumps(asdict(entry)).encode())

    def put_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if not path.exists():
            atomic_write(path, data)
        return sha
