"""Fetching cover bytes. One small interface: ``Fetcher.fetch(ref) -> bytes`` or :class:`RowError`.

``ref`` is a local path or an http(s) URL. The local engine calls ``fetch`` from worker threads.
"""

from __future__ import annotations

from typing import Protocol

from .simple import SimpleFetcher


class Fetcher(Protocol):
    def fetch(self, ref: str) -> bytes: ...

    def close(self) -> None: ...


__all__ = ["Fetcher", "SimpleFetcher"]
