"""Fetching cover bytes: the stage between a source's rows and the decoder.

:class:`CoverFetcher` is the one interface the pipeline uses: ``stream(items, ref)`` yields
``(item, bytes | RowError)`` for every item, in input order, with a bounded number in flight,
so memory stays flat however long the input. ``ref(item)`` is an http(s) URL, a ``file://``
URL or a local path. HTTP runs on an aiohttp event loop in a background thread (see
:mod:`scorer.fetch.http` for limits, retries and safety); local files are read on threads.
Images a caller already holds (``scorer.score`` takes bytes, PIL images and numpy arrays) are
registered in :attr:`CoverFetcher.memory` under a ``memory:`` ref and handed on as they are.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from scorer.errors import RowError
from scorer.fetch.cache import CoverCache, default_cache_root
from scorer.fetch.http import MAX_BYTES, FetchOptions, HttpFetcher
from scorer.fetch.local import local_path, read_local
from scorer.sources.memory import MEMORY

T = TypeVar("T")
#: bytes fetched or read, or (from :attr:`CoverFetcher.memory`) an image object the decoder takes as it is
Result = object


class CoverFetcher:
    def __init__(self, options: FetchOptions | None = None, base_dir: Path | None = None,
                 cache: CoverCache | None = None) -> None:
        self.options = options or FetchOptions()
        self.base_dir = base_dir
        if cache is None and self.options.cache:
            cache = CoverCache.default(self.options.cache_max_bytes)
        self.cache = cache
        #: ``{"memory:…": image}``: covers already in memory, filled and emptied by the caller
        self.memory: dict[str, object] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="scorer-fetch", daemon=True)
        self._thread.start()
        self._http = HttpFetcher(self.options, self.cache)
        self._call(self._http.start).result()

    def _call(self, fn: Callable[..., Any], *args: Any) -> Future:
        """``fn(*args)`` run on the fetch loop. The coroutine is made here, inside the ``try``: one that a signal
        (SIGTERM, Ctrl-C) or a closed loop keeps from being scheduled is closed, rather than left to warn "never
        awaited" on stderr as the process exits."""
        coro = None
        try:
            coro = fn(*args)
            return asyncio.run_coroutine_threadsafe(coro, self._loop)
        except BaseException:
            if coro is not None:
                coro.close()
            raise

    async def get(self, ref: str) -> object:
        ref = (ref or "").strip()
        if not ref:
            raise RowError("missing_url", "cover_url is empty")
        if ref.startswith(MEMORY) and ref in self.memory:
            return self.memory[ref]
        scheme = ref.split(":", 1)[0].lower() if ":" in ref else ""
        if scheme in ("http", "https"):
            return await self._http.fetch(ref)
        if scheme and scheme != "file" and len(scheme) > 1 and "/" not in scheme:  # "c:" is a drive
            raise RowError("bad_url", f"unsupported URL scheme {scheme!r}: use a local path or an http(s) URL")
        if not self.options.local_files:
            raise RowError("local_file_refused", "local paths and file:// URLs are refused here (--no-local-files)")
        path = local_path(ref, self.base_dir)
        return await asyncio.to_thread(read_local, path, self.options.max_bytes)

    async def _result(self, ref: str) -> Result:
        try:
            return await self.get(ref)
        except RowError as e:
            return e

    def stream(self, items: Iterable[T], ref: Callable[[T], str], window: int | None = None
               ) -> Iterator[tuple[T, Result]]:
        """Every item once, in input order, with its bytes or its error; at most ``window`` in flight."""
        window = window or max(64, 4 * self.options.concurrency)
        pending: deque[tuple[T, Future]] = deque()
        try:
            for item in items:
                pending.append((item, self._call(self._result, ref(item))))
                if len(pending) >= window:
                    head, fut = pending.popleft()
                    yield head, fut.result()
            while pending:
                head, fut = pending.popleft()
                yield head, fut.result()
        finally:
            for _, fut in pending:  # the consumer stopped early
                fut.cancel()

    async def _shutdown(self) -> None:
        """Cancel what is still in flight (a consumer that stopped early, Ctrl-C, SIGTERM), then close."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._call(self._shutdown).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> CoverFetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["MAX_BYTES", "MEMORY", "CoverCache", "CoverFetcher", "FetchOptions", "default_cache_root"]
