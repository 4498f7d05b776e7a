"""Fakes of MusicBrainz's search API and the Cover Art Archive: real aiohttp servers on 127.0.0.1.

They answer as the real services do:

- ``GET /ws/2/release-group?query=...&fmt=json&limit=&offset=``: Lucene-style ``tag:"x"`` (a phrase:
  ``tag:"indie"`` also matches a release group tagged ``indie rock``) and ``primarytype:album``;
  pages of ``limit`` (default 25, at most 100) from ``offset``, as ``{"created", "count", "offset",
  "release-groups": [...]}``, each entry with ``id``, ``score``, ``title``, ``primary-type``,
  ``secondary-types``, ``first-release-date``, ``artist-credit``, ``releases`` and ``tags``
  (``{"count", "name"}``). No User-Agent, or a library's default one, gets 403; a second request
  from one address within ``min_interval`` seconds gets 503, as do the next ``busy(n)`` requests.
- ``GET /release-group/{mbid}/front-250`` on the archive: 400 for a malformed MBID, 404 when no
  front cover, else 307 to the storage host's ``/download/mbid-{release}/...`` which 302s to the
  file on a storage node; 503 when asked faster than ``min_interval``; 500 for the ``broken`` ones.

    with FakeMusicBrainz() as mb, FakeCoverArt() as caa:
        rg = mb.add("Title", "Artist", {"indie": 3})
        caa.set_cover(rg, cover_path)
        mb.log, caa.log   # [(time by the fake's clock, path, query, status, user agent), ...]
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from .loopback import LoopbackServer

RATE_MESSAGE = ("Your requests are exceeding the allowable rate limit. Please see "
                "https://wiki.musicbrainz.org/XMLWebService for more information.")
GENERIC_AGENTS = ("python-requests/", "python-urllib", "aiohttp/", "curl/", "wget/")
#: how much earlier than ``min_interval`` a request may arrive and still count as paced (scheduling jitter)
TOLERANCE_S = 0.05
_MBID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TAG = re.compile(r'tag:"((?:[^"\\]|\\.)*)"|tag:(\S+)', re.IGNORECASE)
_TYPE = re.compile(r"primarytype:\"?(\w+)\"?", re.IGNORECASE)
_NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")


def mbid(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join(parts)))


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


@dataclass
class Album:
    id: str
    title: str
    artist: str
    artist_id: str
    tags: dict[str, int]
    primary: str = "Album"
    secondary: tuple[str, ...] = ()
    date: str = "2004-05-17"
    release_id: str = field(default="")

    def as_json(self, score: int) -> dict:
        item = {"id": self.id, "type-id": "f529b476-6e62-324f-b0aa-1f3e33d313fc", "score": score,
                "primary-type-id": "f529b476-6e62-324f-b0aa-1f3e33d313fc", "count": 1, "title": self.title,
                "first-release-date": self.date, "primary-type": self.primary,
                "artist-credit": [{"name": self.artist, "artist": {"id": self.artist_id, "name": self.artist,
                                                                    "sort-name": self.artist}}],
                "releases": [{"id": self.release_id, "status-id": "4e304316-386d-3409-af2e-78857eec5cfe",
                              "title": self.title, "status": "Official"}],
                "tags": [{"count": n, "name": t} for t, n in self.tags.items()]}
        if self.secondary:
            item["secondary-types"] = list(self.secondary)
            item["secondary-type-ids"] = [mbid("type", s) for s in self.secondary]
        return item

    def matches(self, tag: str) -> bool:
        want = _tokens(tag)
        for name in self.tags:
            have = _tokens(name)
            if any(have[i:i + len(want)] == want for i in range(len(have) - len(want) + 1)):
                return True
        return False


class _Paced:
    """What both services share: a loopback server, a request log, and 503 for requests that come too fast."""

    def __init__(self, min_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = min_interval
        self.clock = clock  # a test's fake clock, to check a client's pacing without waiting
        self.log: list[tuple[float, str, str, int, str]] = []
        self.too_fast = 0
        self._busy = 0
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def busy(self, n: int) -> None:
        """The next ``n`` requests answer 503, as when the servers are overloaded."""
        self._busy = n

    def _gate(self, request: web.Request) -> web.Response | None:
        now = self.clock()
        with self._lock:
            last = self._last.get(request.remote or "")
            self._last[request.remote or ""] = now
            if last is not None and now - last < self.min_interval - TOLERANCE_S:
                self.too_fast += 1
                return self._unavailable(RATE_MESSAGE)
            if self._busy:
                self._busy -= 1
                return self._unavailable("The MusicBrainz web server is currently busy. Please try again later.")
        return None

    def _unavailable(self, message: str) -> web.Response:
        return web.json_response({"error": message}, status=503)

    def _record(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        self.log.append((self.clock(), request.path, request.query_string, response.status,
                         request.headers.get("User-Agent", "")))
        return response

    def _start(self, app: web.Application) -> None:
        self._server = LoopbackServer(app, access_log=None)
        self.port = self._server.port

    def __exit__(self, *exc) -> None:
        self._server.stop()

    def statuses(self, path_prefix: str = "") -> list[int]:
        return [status for _, path, _, status, _ in self.log if path.startswith(path_prefix)]


class FakeMusicBrainz(_Paced):
    def __init__(self, min_interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(min_interval, clock)
        self.albums: list[Album] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/ws/2/"

    def add(self, title: str, artist: str, tags: dict[str, int] | list[str], secondary: tuple[str, ...] = (),
            primary: str = "Album", date: str = "2004-05-17") -> str:
        tags = tags if isinstance(tags, dict) else dict.fromkeys(tags, 1)
        album = Album(mbid("rg", artist, title), title, artist, mbid("artist", artist), dict(tags), primary,
                      tuple(secondary), date, mbid("release", artist, title))
        self.albums.append(album)
        return album.id

    def __enter__(self) -> FakeMusicBrainz:
        app = web.Application()
        app.add_routes([web.get("/ws/2/release-group", self._search)])
        self._start(app)
        return self

    async def _search(self, request: web.Request) -> web.StreamResponse:
        return self._record(request, self._answer(request))

    def _answer(self, request: web.Request) -> web.Response:
        agent = request.headers.get("User-Agent", "")
        if not agent or agent.lower().startswith(GENERIC_AGENTS):
            return web.json_response({"error": "Please provide a meaningful User-Agent: "
                                      "https://musicbrainz.org/doc/MusicBrainz_API/Rate_Limiting"}, status=403)
        if (refused := self._gate(request)) is not None:
            return refused
        q = request.query
        if q.get("fmt") != "json":
            return web.Response(text="<?xml version=\"1.0\"?><metadata/>", content_type="application/xml")
        query = q.get("query", "")
        try:
            limit = min(100, max(1, int(q.get("limit", "25"))))
            offset = max(0, int(q.get("offset", "0")))
        except ValueError:
            return web.json_response({"error": "Invalid limit or offset"}, status=400)
        if not query:
            return web.json_response({"error": "You must specify a query"}, status=400)
        tags = [(m.group(1) or m.group(2)).replace('\\"', '"').replace("\\\\", "\\") for m in _TAG.finditer(query)]
        kind = _TYPE.search(query)
        hits = [a for a in self.albums if all(a.matches(t) for t in tags)
                and (kind is None or a.primary.lower() == kind.group(1).lower())]
        page = hits[offset:offset + limit]
        return web.json_response({"created": "2026-12-02T10:00:00.000Z", "count": len(hits), "offset": offset,
                                  "release-groups": [a.as_json(100 - min(99, offset + i))
                                                     for i, a in enumerate(page)]})


class FakeCoverArt(_Paced):
    """The Cover Art Archive and the storage host its redirects lead to (two servers)."""

    def __init__(self, min_interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(min_interval, clock)
        self.covers: dict[str, bytes] = {}
        self.broken: set[str] = set()  # release groups whose cover answers 500, as during an archive outage
        self.storage_log: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def set_cover(self, release_group: str, image: Path | bytes) -> None:
        self.covers[release_group] = image if isinstance(image, bytes) else Path(image).read_bytes()

    def asked(self) -> list[str]:
        """The release groups asked for, in order, once per request the archive answered (not 503s)."""
        return [path.split("/")[2] for _, path, _, status, _ in self.log if status != 503]

    def __enter__(self) -> FakeCoverArt:
        storage = web.Application()
        storage.add_routes([web.get("/download/{item}/{name}", self._download),
                            web.get("/{node}/items/{item}/{name}", self._file)])
        self._storage = LoopbackServer(storage, access_log=None)
        self.storage_port = self._storage.port
        app = web.Application()
        app.add_routes([web.get("/release-group/{mbid}/{which}", self._front)])
        self._start(app)
        return self

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self._storage.stop()

    async def _front(self, request: web.Request) -> web.StreamResponse:
        return self._record(request, self._answer(request))

    def _answer(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        rg, which = request.match_info["mbid"], request.match_info["which"]
        if not _MBID.fullmatch(rg):
            return web.Response(status=400, text=f"{rg} is not a valid MBID")
        if which not in ("front", "front-250", "front-500", "front-1200"):
            return web.Response(status=400, text="unknown image")
        if rg in self.broken:
            return web.Response(status=500, text="Internal Server Error")
        if rg not in self.covers:
            return web.Response(status=404, text=f"No cover art found for release group {rg}")
        release = mbid("release-of", rg)
        name = f"mbid-{release}-{uuid.UUID(mbid('image', rg)).int % 10**10}_thumb250.jpg"
        return web.Response(status=307, headers={
            "Location": f"http://127.0.0.1:{self.storage_port}/download/mbid-{release}/{name}"})

    async def _download(self, request: web.Request) -> web.Response:
        self.storage_log.append(request.path)
        item, name = request.match_info["item"], request.match_info["name"]
        return web.Response(status=302, headers={"Location": f"/ia8001/items/{item}/{name}"})

    async def _file(self, request: web.Request) -> web.Response:
        self.storage_log.append(request.path)
        release = request.match_info["item"].removeprefix("mbid-")
        for rg in self.covers:
            if mbid("release-of", rg) == release:
                return web.Response(body=self.covers[rg], content_type="image/jpeg")
        return web.Response(status=404)
