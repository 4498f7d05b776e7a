"""A fake of Deezer's public API (api.deezer.com): a real aiohttp server on 127.0.0.1, in a background thread.

It answers as the real API does: no key and no sign-in; errors inside an HTTP 200 body
(``{"error": {"type", "message", "code"}}``: 800 "no data" for an unknown playlist, an ``OAuthException``
with code 200 for a private one, code 4 "Quota limit exceeded" past 50 requests in 5 seconds);
``/playlist/{id}`` with ``nb_tracks`` and ``creator``; ``/playlist/{id}/tracks`` paged by ``index`` and
``limit`` (default 25) with ``total`` and a ``next`` URL while more remain; each track with ``time_add``
(Unix seconds), ``readable`` (false for a track no longer available) and its album's covers
(``cover`` 120 px, ``cover_small`` 56, ``cover_medium`` 250, ``cover_big`` 500, ``cover_xl`` 1000). The catalogue
(``/genre``, ``/genre/{id}/artists``, ``/chart/{id}/albums``, ``/artist/{id}/albums``) is in deezer_catalog.py.

    with FakeDeezer(cover_base=f"{cdn.base}/img") as fake:
        fake.add_playlist(908622995, "Mix", [fake.track("Song", "Artist", "Album")])
        fake.quota_burst(3)   # the next 3 requests answer the quota error
        fake.requests         # [(path, query), ...]; fake.quota_answers: how many got the quota error
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .deezer_catalog import Catalogue
from .loopback import LoopbackServer

QUOTA_REQUESTS, QUOTA_WINDOW_S = 50, 5.0


def _error(kind: str, message: str, code: int) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message, "code": code}})  # HTTP 200, as Deezer


class FakeDeezer(Catalogue):
    def __init__(self, cover_base: str):
        self.cover_base = cover_base.rstrip("/")
        self.playlists: dict[str, dict] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.quota_answers = 0
        self._burst = 0
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()
        self._next_id = 1000
        self._init_catalogue()  # genres, artists, albums, charts: tests/fakes/deezer_catalog.py

    # ------------------------------------------------------------------------------------------ data
    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def track(self, title: str, artist: str, album: str, album_id: int | None = None, readable: bool = True,
              time_add: int = 1_767_225_600, cover: bool = True) -> dict:
        """A track as a playlist's ``/tracks`` lists it; ``cover=False``: an album without cover art."""
        album_id = album_id if album_id is not None else int(hashlib.sha256(album.encode()).hexdigest()[:8], 16)
        md5 = hashlib.md5(f"{album_id}".encode()).hexdigest() if cover else ""  # noqa: S324 - Deezer's own scheme
        covers = {f: (f"{self.cover_base}/{md5}-{px}x{px}.jpg" if cover else "") for f, px in
                  (("cover", 120), ("cover_small", 56), ("cover_medium", 250), ("cover_big", 500), ("cover_xl", 1000))}
        return {"id": self._id(), "readable": readable, "title": title, "title_short": title,
                "link": "https://www.deezer.com/track/0", "duration": 200, "rank": 1, "explicit_lyrics": False,
                "time_add": time_add, "md5_image": md5,
                "artist": {"id": int(hashlib.sha256(artist.encode()).hexdigest()[:7], 16), "name": artist,
                           "type": "artist"},  # one id per artist, as on Deezer
                "album": {"id": album_id, "title": album, **covers, "md5_image": md5, "type": "album"},
                "type": "track"}

    def add_playlist(self, playlist_id: int, title: str, tracks: list[dict], public: bool = True,
                     creator: str = "listener") -> None:
        self.playlists[str(playlist_id)] = {"title": title, "tracks": tracks, "public": public,
                                            "creator": {"id": 42, "name": creator, "type": "user"}}

    def quota_burst(self, n: int) -> None:
        """The next ``n`` requests answer the quota error, as when another program on this IP used it up."""
        self._burst = n

    # ---------------------------------------------------------------------------------------- server
    def __enter__(self) -> FakeDeezer:
        app = web.Application(middlewares=[self._quota])
        app.add_routes([web.get("/playlist/{id}", self._playlist), web.get("/playlist/{id}/tracks", self._tracks),
                        *self.catalogue_routes()])
        self._server = LoopbackServer(app, access_log=None)
        self.base_url = f"http://127.0.0.1:{self._server.port}/"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @web.middleware
    async def _quota(self, request: web.Request, handler: Any) -> web.StreamResponse:
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] > QUOTA_WINDOW_S:
                self._recent.popleft()
            self._recent.append(now)
            over = self._burst > 0 or len(self._recent) > QUOTA_REQUESTS
            self._burst = max(0, self._burst - 1)
            self.requests.append((request.path, dict(request.query)))
            self.quota_answers += over
        return _error("Exception", "Quota limit exceeded", 4) if over else await handler(request)

    def _find(self, request: web.Request) -> tuple[dict | None, web.Response | None]:
        playlist = self.playlists.get(request.match_info["id"])
        if playlist is None:
            return None, _error("DataException", "no data", 800)
        if not playlist["public"]:
            return None, _error("OAuthException", "An active access token must be used to query information about "
                                                  "the current user", 200)
        return playlist, None

    async def _playlist(self, request: web.Request) -> web.Response:
        playlist, error = self._find(request)
        if error is not None:
            return error
        pid = request.match_info["id"]
        return web.json_response({
            "id": int(pid), "title": playlist["title"], "public": True, "nb_tracks": len(playlist["tracks"]),
            "creator": playlist["creator"], "link": f"https://www.deezer.com/playlist/{pid}",
            "tracklist": f"{self.base_url}playlist/{pid}/tracks", "type": "playlist"})

    async def _tracks(self, request: web.Request) -> web.Response:
        playlist, error = self._find(request)
        if error is not None:
            return error
        try:
            index = max(0, int(request.query.get("index", 0)))
            limit = max(1, int(request.query.get("limit", 25)))
        except ValueError:
            return _error("ParameterException", "Wrong parameter type", 500)
        tracks = playlist["tracks"]
        body: dict[str, Any] = {"data": tracks[index:index + limit], "checksum": "0", "total": len(tracks)}
        pid = request.match_info["id"]
        if index + limit < len(tracks):
            body["next"] = f"{self.base_url}playlist/{pid}/tracks?" + urlencode({"index": index + limit,
                                                                                "limit": limit})
        if index > 0:
            body["prev"] = f"{self.base_url}playlist/{pid}/tracks?" + urlencode({"index": max(0, index - limit),
                                                                                "limit": limit})
        return web.json_response(body)
