"""A loopback cover CDN (aiohttp.web on 127.0.0.1) that serves real covers and misbehaves on request.

``/img/<name>`` serves a real cover chosen by a hash of ``name`` (so the Bandcamp link file's URL
paths work once their host is rewritten), as JPEG, or PNG/WebP when ``name`` ends so, with ETag,
Last-Modified and conditional GETs, and with ``?max_age=N`` a ``Cache-Control: max-age``.
``/bad/...`` routes behave as broken CDNs do. Run as a module to serve covers for benchmarks:
``python -m tests.fakes.cdn --covers DIR --latency-ms 50``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import struct
import threading
import zlib
from collections import Counter
from email.utils import formatdate
from pathlib import Path

from aiohttp import web
from PIL import Image

from .loopback import LoopbackServer

HTML = b"<!doctype html><html><head><title>Album</title></head><body><p>Not an image</p></body></html>\n"
LAST_MODIFIED = formatdate(1_700_000_000, usegmt=True)
HUGE = 21 * 1024 * 1024


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A real PNG whose header claims ``width`` x ``height`` greyscale pixels (all zero), ~1 MB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + 1-bit pixels
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class CoverCDN:
    """``with CoverCDN(covers) as cdn:`` → ``cdn.base`` (``http://127.0.0.1:PORT``), ``cdn.hits``."""

    def __init__(self, covers: list[Path], latency: float = 0.0, host: str = "127.0.0.1", port: int = 0):
        if not covers:
            raise ValueError("CoverCDN needs at least one cover")
        self.covers = [Path(p) for p in covers]
        self.latency = latency
        self.host, self.port = host, port
        self.hits: Counter = Counter()
        self.statuses: Counter = Counter()  # (path, status) pairs
        self._encoded: dict[tuple[int, str], bytes] = {}
        self._counters: Counter = Counter()  # per-key state for the once-then-OK routes
        self._bomb: bytes | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ content
    def cover_index(self, name: str) -> int:
        return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % len(self.covers)

    def body(self, name: str) -> tuple[bytes, str]:
        """The bytes and content type served at ``/img/<name>``."""
        fmt = {"png": "PNG", "webp": "WEBP"}.get(name.rsplit(".", 1)[-1].lower(), "JPEG")
        key = (self.cover_index(name), fmt)
        with self._lock:
            if key not in self._encoded:
                source = self.covers[key[0]]
                if fmt == "JPEG":
                    data = source.read_bytes()
                else:
                    out = io.BytesIO()
                    with Image.open(source) as im:
                        im.convert("RGB").save(out, fmt)
                    data = out.getvalue()
                self._encoded[key] = data
        return self._encoded[key], f"image/{fmt.lower()}"

    def _once(self, key: str) -> int:
        with self._lock:
            self._counters[key] += 1
            return self._counters[key]

    # ------------------------------------------------------------------ routes
    async def img(self, request: web.Request) -> web.StreamResponse:
        data, ctype = self.body(request.match_info["name"])
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        # ?max_age=N: sent with Cache-Control, as image CDNs do (Cloudfront, Fastly: max-age of a day or more)
        cache = {"Cache-Control": f"public, max-age={int(request.query['max_age'])}"} \
            if "max_age" in request.query else {}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag, **cache})
        return web.Response(body=data, content_type=ctype,
                            headers={"ETag": etag, "Last-Modified": LAST_MODIFIED, **cache})

    async def bad(self, request: web.Request) -> web.StreamResponse:  # noqa: PLR0911, PLR0912 - one route each
        kind = request.match_info["kind"]
        key = request.query.get("k", "")
        jpeg = self.covers[0].read_bytes()
        if kind == "trickle":  # headers at once, then one byte every 0.2 s, never finishing
            r = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length": str(len(jpeg))})
            await r.prepare(request)
            for b in jpeg:
                await r.write(bytes([b]))
                await asyncio.sleep(0.2)
            return r
        if kind == "stall":  # says nothing for a long time
            await asyncio.sleep(30)
            return web.Response(body=jpeg, content_type="image/jpeg")
        if kind == "reset":  # half the body, then the connection is torn down
            r = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length": str(len(jpeg))})
            await r.prepare(request)
            await r.write(jpeg[: len(jpeg) // 2])
            request.transport.abort()
            return r
        if kind == "truncated.jpg":
            return web.Response(body=jpeg[: len(jpeg) // 2], content_type="image/jpeg")
        if kind == "html":
            return web.Response(body=HTML, content_type="image/jpeg")  # lies about its type, as CDNs do
        if kind == "bomb.png":
            if self._bomb is None:
                self._bomb = png_bomb()
            return web.Response(body=self._bomb, content_type="image/png")
        if kind == "flaky":  # 500 once per key, then the cover
            if self._once(f"flaky{key}") == 1:
                return web.Response(status=500, text="upstream error")
            return web.Response(body=jpeg, content_type="image/jpeg")
        if kind == "busy":  # 429 once per key with Retry-After, then the cover
            if self._once(f"busy{key}") == 1:
                after = request.query.get("after", "1")
                return web.Response(status=429, text="slow down", headers={"Retry-After": after})
            return web.Response(body=jpeg, content_type="image/jpeg")
        if kind == "down":
            return web.Response(status=503, text="unavailable")
        if kind == "forbidden":
            return web.Response(status=403, text="forbidden")
        if kind == "gone":
            return web.Response(status=404, text="no such cover")
        if kind == "loop":
            raise web.HTTPFound("/bad/loop2")
        if kind == "loop2":
            raise web.HTTPFound("/bad/loop")
        if kind == "metadata":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/iam/security-credentials/")
        if kind == "moved":
            raise web.HTTPMovedPermanently("/img/moved.jpg")
        if kind == "huge":  # honest Content-Length over the default 20 MB limit
            return web.Response(body=b"\xff" * HUGE, content_type="image/jpeg")
        if kind == "huge-chunked":  # no Content-Length: the limit must hold while reading
            r = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            r.enable_chunked_encoding()
            await r.prepare(request)
            for _ in range(HUGE // 65536):
                await r.write(b"\xff" * 65536)
            return r
        if kind == "slow.jpg":  # a good cover after half a second: many requests for it overlap
            await asyncio.sleep(0.5)
            return web.Response(body=jpeg, content_type="image/jpeg")
        raise web.HTTPNotFound()

    @web.middleware
    async def _count(self, request: web.Request, handler):
        with self._lock:
            self.hits[request.path] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        response = await handler(request)
        with self._lock:
            self.statuses[(request.path, response.status)] += 1
        return response

    def app(self) -> web.Application:
        application = web.Application(middlewares=[self._count])
        application.add_routes([web.get("/img/{name:.+}", self.img), web.get("/bad/{kind}", self.bad)])
        return application

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> CoverCDN:
        self._server = LoopbackServer(self.app(), self.host, self.port, name="cover-cdn", backlog=1024,
                                      cleanup_timeout=30, handle_signals=False)
        self.port = self._server.port
        self.base = f"http://{self.host}:{self.port}"
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--covers", type=Path, required=True, help="folder of JPEG covers (searched recursively)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    covers = sorted(args.covers.rglob("*.jpg"))
    cdn = CoverCDN(covers, latency=args.latency_ms / 1000, port=args.port)
    web.run_app(cdn.app(), host="127.0.0.1", port=args.port, print=None, backlog=1024)


if __name__ == "__main__":
    main()
