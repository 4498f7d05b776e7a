"""Local files and plain blocking http(s) GETs, safe to call from many threads."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import RowError

#: Covers are small; anything bigger than this is refused rather than read.
MAX_BYTES = 20 * 1024 * 1024


class SimpleFetcher:
    def __init__(self, timeout: float = 30.0, max_bytes: int = MAX_BYTES, base_dir: Path | None = None):
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.base_dir = base_dir
        self._local = threading.local()  # requests sessions are not shared across threads
        self._sessions: list = []

    def fetch(self, ref: str) -> bytes:
        ref = (ref or "").strip()
        if not ref:
            raise RowError("missing_url", "cover_url is empty")
        scheme = urlsplit(ref).scheme.lower()
        if scheme in ("http", "https"):
            return self._get(ref)
        if scheme == "file":
            return self._read(Path(urlsplit(ref).path))
        if scheme and len(scheme) > 1:  # "c:" is a Windows drive, not a scheme
            raise RowError("bad_url", f"unsupported URL scheme {scheme!r}: use a local path or http(s)")
        path = Path(ref).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return self._read(path)

    def _read(self, path: Path) -> bytes:
        try:
            size = path.stat().st_size
        except FileNotFoundError as e:
            raise RowError("not_found", f"no such file: {path}") from e
        except OSError as e:
            raise RowError("unreadable", f"{path}: {e.strerror}") from e
        if size > self.max_bytes:
            raise RowError("too_large", f"{path} is {size} bytes (limit {self.max_bytes})")
        try:
            return path.read_bytes()
        except IsADirectoryError as e:
            raise RowError("unreadable", f"{path} is a directory") from e
        except OSError as e:
            raise RowError("unreadable", f"{path}: {e.strerror}") from e

    def _get(self, url: str) -> bytes:
        import requests

        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            self._sessions.append(session)
        try:
            with session.get(url, timeout=self.timeout, stream=True) as r:
                if r.status_code == 404:
                    raise RowError("http_404", f"404 Not Found: {url}")
                if 400 <= r.status_code < 500:
                    raise RowError("http_4xx", f"HTTP {r.status_code}: {url}")
                if r.status_code >= 500:
                    raise RowError("http_5xx", f"HTTP {r.status_code}: {url}")
                chunks, total = [], 0
                for chunk in r.iter_content(64 * 1024):
                    total += len(chunk)
                    if total > self.max_bytes:
                        raise RowError("too_large", f"response exceeds {self.max_bytes} bytes: {url}")
                    chunks.append(chunk)
                return b"".join(chunks)
        except requests.Timeout as e:
            raise RowError("timeout", f"timed out after {self.timeout:g}s: {url}") from e
        except requests.RequestException as e:
            raise RowError("fetch_error", f"{type(e).__name__}: {url}") from e

    def close(self) -> None:
        for session in self._sessions:
            session.close()
