"""One cover over HTTP, safely: size caps, timeouts, retries with backoff, vetted redirects, cache.

:class:`HttpFetcher` is the async core; it runs inside the event loop of
:class:`~scorer.fetch.CoverFetcher`, which is what the pipeline talks to.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import aiohttp
from PIL import Image, UnidentifiedImageError
from yarl import URL

from scorer.errors import RowError
from scorer.fetch.cache import CoverCache
from scorer.fetch.safety import BlockedAddress, SafeResolver, check_url
from scorer.limits import MAX_PIXELS
from scorer.version import __version__

#: Covers are small; anything bigger than this is refused rather than read.
MAX_BYTES = 20 * 1024 * 1024
RETRY_STATUS = {408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524}
REDIRECT_STATUS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class FetchOptions:
    """How covers are fetched. The defaults suit public CDNs; see ``scorer catalog --help``."""

    concurrency: int = 64  # requests in flight, all hosts together
    per_host: int = 16  # connections to any one host
    connect_timeout: float = 10.0
    read_timeout: float = 20.0  # longest silence between two reads
    deadline: float = 60.0  # whole request, however the server trickles
    retries: int = 3  # extra attempts for transient failures
    backoff: float = 0.5  # first backoff in seconds; doubles per attempt, full jitter
    max_retry_after: float = 120.0  # longest Retry-After we wait out
    max_bytes: int = MAX_BYTES
    max_redirects: int = 5
    allow_private_hosts: bool = False
    cache: bool = True
    cache_max_bytes: int | None = None  # the cover cache's bound; None: $SCORER_CACHE_MAX_SIZE or 10 GB
    user_agent: str = f"scorer/{__version__} (album cover genre scorer)"
    #: ``(origin, seconds)`` pairs: at most one request per that many seconds to that origin
    #: (``https://host[:port]``), every attempt and redirect hop counted, for services that set a rate
    paced: tuple[tuple[str, float], ...] = ()
    #: False: local paths and file:// URLs are refused (``local_file_refused``) without touching the disk, so a
    #: catalog from someone else cannot learn which files exist on this machine
    local_files: bool = True


class _Retry(Exception):
    """A transient failure: try again after ``delay`` seconds (None: exponential backoff)."""

    def __init__(self, error: RowError, delay: float | None = None):
        super().__init__(error.message)
        self.error = error
        self.delay = delay


class HttpFetcher:
    def __init__(self, options: FetchOptions, cache: CoverCache | None) -> None:
        self.options = options
        self.cache = cache
        self._session: aiohttp.ClientSession | None = None
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._pacers = {_origin(URL(origin)): _Pacer(interval) for origin, interval in options.paced}

    async def start(self) -> None:
        o = self.options
        connector = aiohttp.TCPConnector(limit=o.concurrency, limit_per_host=o.per_host, ttl_dns_cache=300,
                                         resolver=SafeResolver(o.allow_private_hosts))
        # Covers are already compressed: ask for identity and never inflate (no gzip bombs). Proxies from
        # the environment are not used: the address checks must see the host that is really dialled.
        self._session = aiohttp.ClientSession(
            connector=connector, headers={"User-Agent": o.user_agent, "Accept-Encoding": "identity"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=o.connect_timeout, sock_read=o.read_timeout),
            auto_decompress=False, trust_env=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self, url: str) -> bytes:
        """The cover at ``url``, or :class:`RowError`. Concurrent calls for one URL share one request."""
        shared = self._inflight.get(url)
        if shared is not None:
            return await asyncio.shield(shared)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[url] = future
        try:
            data = await self._fetch(url)
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # mark retrieved: sharers may not exist
            raise
        else:
            future.set_result(data)
            return data
        finally:
            del self._inflight[url]

    async def _fetch(self, url: str) -> bytes:
        check_url(url, self.options.allow_private_hosts)
        cached = self.cache.lookup(url) if self.cache else None
        if cached and cached[0].is_fresh():
            return cached[1]
        o = self.options
        for attempt in range(o.retries + 1):
            try:
                try:
                    return await asyncio.wait_for(self._attempt(url, cached), o.deadline)
                except asyncio.TimeoutError as e:
                    if isinstance(e, aiohttp.ServerTimeoutError):  # connect or read stalled: transient
                        raise _Retry(RowError("timeout", f"{_timeout_kind(e)} timed out: {url}")) from e
                    raise RowError("timeout", f"not finished within the {o.deadline:g}s deadline: {url}") from e
            except _Retry as r:
                if attempt == o.retries:
                    raise r.error from r
                await asyncio.sleep(r.delay if r.delay is not None else random.uniform(0, o.backoff * 2 ** attempt))
        raise AssertionError("unreachable")

    async def _attempt(self, url: str, cached) -> bytes:
        assert self._session is not None
        o = self.options
        headers = cached[0].validators() if cached else {}
        target = URL(url)
        seen = {str(target)}
        try:
            for _ in range(o.max_redirects + 1):
                pacer = self._pacers.get(_origin(target))
                if pacer is not None:
                    await pacer.wait()
                async with self._session.get(target, headers=headers, allow_redirects=False) as r:
                    if r.status in REDIRECT_STATUS:
                        target = self._next_hop(target, r.headers.get("Location"), seen)
                        headers = {}  # validators belong to the first URL only
                        continue
                    return await self._read(url, r, cached)
            raise RowError("too_many_redirects", f"more than {o.max_redirects} redirects: {url}")
        except aiohttp.ClientConnectorDNSError as e:
            if isinstance(e.os_error, BlockedAddress):
                raise RowError("blocked_address", f"{e.os_error}: {url}") from e
            raise RowError("dns_error", f"{target.host} does not resolve: {url}") from e
        except aiohttp.ServerTimeoutError:
            raise
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            raise _Retry(RowError("fetch_error", f"{type(e).__name__}: {e or 'connection failed'}: {url}")) from e
        except aiohttp.InvalidURL as e:
            raise RowError("bad_url", f"invalid URL {e}: {url}") from e

    def _next_hop(self, current: URL, location: str | None, seen: set[str]) -> URL:
        if not location:
            raise RowError("fetch_error", f"redirect without a Location header: {current}")
        target = check_url(current.join(URL(location)), self.options.allow_private_hosts)
        if str(target) in seen:
            raise RowError("too_many_redirects", f"redirect loop back to {target}")
        seen.add(str(target))
        return target

    async def _read(self, url: str, r: aiohttp.ClientResponse, cached) -> bytes:
        o = self.options
        if r.status == 304 and cached:
            entry, data = cached
            if self.cache:
                self.cache.touch(entry, r.headers.get("Cache-Control", ""))
            return data
        if r.status in RETRY_STATUS:
            code = "http_429" if r.status == 429 else "http_5xx" if r.status >= 500 else "http_4xx"
            error = RowError(code, f"HTTP {r.status} {r.reason or ''}: {url}".replace("  ", " "))
            delay = retry_after(r.headers.get("Retry-After"))
            if delay is not None and delay > o.max_retry_after:
                raise RowError(code, f"{error.message} (asks to wait {delay:.0f}s; limit {o.max_retry_after:g}s)")
            raise _Retry(error, delay)
        if r.status in (404, 410):
            raise RowError("http_404", f"HTTP {r.status} {r.reason or ''}: {url}")
        if r.status >= 400:
            raise RowError("http_5xx" if r.status >= 500 else "http_4xx", f"HTTP {r.status} {r.reason or ''}: {url}")
        if r.status != 200:
            raise RowError("fetch_error", f"unexpected HTTP {r.status}: {url}")
        if r.content_length is not None and r.content_length > o.max_bytes:
            raise RowError("too_large", f"{r.content_length} bytes announced (limit {o.max_bytes}): {url}")
        body = bytearray()
        async for chunk in r.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > o.max_bytes:
                raise RowError("too_large", f"response exceeds {o.max_bytes} bytes: {url}")
        data = bytes(body)
        sniff_image(data, url)
        if self.cache:
            with contextlib.suppress(OSError):  # a cache that cannot be written (full, read-only) costs refetches only
                self.cache.store(url, data, r.headers.get("ETag"), r.headers.get("Last-Modified"),
                                 r.headers.get("Cache-Control"))
        return data


class _Pacer:
    """One request start per ``interval`` seconds, in arrival order, across every task of the loop."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = 0.0
        self._lock: asyncio.Lock | None = None

    async def wait(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()  # made inside the running loop
        async with self._lock:
            loop = asyncio.get_running_loop()
            delay = self._next - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = loop.time() + self.interval


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


def sniff_image(data: bytes, url: str) -> None:
    """Refuse what is not an image, or is a decompression bomb, from its header alone (cheap)."""
    if not data:
        raise RowError("not_an_image", f"empty response: {url}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
    except UnidentifiedImageError as e:
        head = data[:64].lstrip().lower()
        kind = "HTML" if head.startswith((b"<!doctype html", b"<html")) else "not a recognised image format"
        raise RowError("not_an_image", f"{kind}: {url}") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise RowError("too_large", f"decompression bomb refused: {url}") from e
    except Exception as e:  # noqa: BLE001 - Pillow raises many types on damaged headers
        raise RowError("decode_error", f"damaged image header ({type(e).__name__}): {url}") from e
    if w * h > MAX_PIXELS:
        raise RowError("too_large", f"image is {w}x{h} pixels (limit {MAX_PIXELS}): {url}")


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _timeout_kind(e: BaseException) -> str:
    return "connect" if isinstance(e, aiohttp.ConnectionTimeoutError) else "read"
