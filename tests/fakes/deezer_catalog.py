"""The catalogue part of the fake Deezer API (tests/fakes/deezer_api.py): genres, their artists and charts, and
artists' albums, answered in the shapes the real API uses (as recorded in deezer-python's test cassettes):

- ``/genre``: ``{"data": [{"id", "name", "picture", ..., "type": "genre"}]}``, one piece, id 0 "All" first;
- ``/genre/{id}/artists``: one unpaged ``{"data": [artist, ...]}`` (Deezer lists about 50);
- ``/chart/{id}/albums``: paged by ``index``/``limit`` (default 10), ``total``, ``next`` while more remain; each
  album with ``record_type``, ``position`` and its ``artist``, but no ``genre_id``;
- ``/artist/{id}/albums``: paged (default 25), each album with ``genre_id``, ``record_type`` (album, single,
  ep, compile), ``release_date``, ``fans`` and its covers, but no artist;
- an unknown genre or artist: error 800 "no data" inside an HTTP 200 body.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

#: the real /genre list, as Deezer answered it (deezer-python's cassette test_list_genres)
GENRES = ((0, "All"), (132, "Pop"), (116, "Rap/Hip Hop"), (152, "Rock"), (113, "Dance"), (165, "R&B"),
          (85, "Alternative"), (106, "Electro"), (466, "Folk"), (144, "Reggae"), (129, "Jazz"), (84, "Country"),
          (98, "Classical"), (173, "Films/Games"), (464, "Metal"), (169, "Soul & Funk"), (2, "African Music"),
          (16, "Asian Music"), (153, "Blues"), (75, "Brazilian Music"), (81, "Indian Music"), (95, "Kids"),
          (197, "Latin Music"))
SIZES = (("cover", 120), ("cover_small", 56), ("cover_medium", 250), ("cover_big", 500), ("cover_xl", 1000))


def _no_data() -> web.Response:
    return web.json_response({"error": {"type": "DataException", "message": "no data", "code": 800}})


def covers(cover_base: str, md5: str) -> dict[str, str]:
    """An album's cover fields; ``md5`` "" for an album without cover art (Deezer gives empty strings)."""
    return {f: (f"{cover_base}/{md5}-{px}x{px}.jpg" if md5 else "") for f, px in SIZES}


class Catalogue:
    """Genres, artists, albums and charts; mixed into ``FakeDeezer``, whose ``cover_base`` and ``base_url`` it uses."""

    cover_base: str
    base_url: str

    def _init_catalogue(self) -> None:
        self.genre_names: dict[int, str] = dict(GENRES)
        self.artists: dict[int, dict[str, Any]] = {}  # id -> name, genres listing it
        self.albums: dict[int, dict[str, Any]] = {}  # id -> the album as /artist/{id}/albums lists it, + artist
        self.charts: dict[int, list[int]] = {}  # genre id -> album ids, in chart order
        self.gone: set[int] = set()  # artists listed somewhere whose own pages answer "no data"
        self._catalogue_id = 5000

    def _next(self) -> int:
        self._catalogue_id += 1
        return self._catalogue_id

    def add_artist(self, name: str, genres: tuple[int, ...] = ()) -> int:
        """An artist, listed by ``/genre/{id}/artists`` for each of ``genres``."""
        artist_id = self._next()
        self.artists[artist_id] = {"name": name, "genres": tuple(genres)}
        return artist_id

    def add_album(self, artist_id: int, title: str, genre_id: int, record_type: str = "album",
                  release_date: str = "2012-05-04", cover: bool = True, md5: str | None = None,
                  cover_base: str | None = None) -> int:
        """An album of ``artist_id`` whose own genre is ``genre_id``; ``cover=False``: no cover art. Its cover is
        ``<cover_base>/<md5>-250x250.jpg`` (``md5`` defaults to a hash of the album id; ``cover_base`` to the
        fake's)."""
        album_id = self._next()
        md5 = (md5 or hashlib.md5(str(album_id).encode()).hexdigest()) if cover else ""  # noqa: S324
        self.albums[album_id] = {
            "id": album_id, "title": title, "link": f"https://www.deezer.com/album/{album_id}",
            **covers(cover_base or self.cover_base, md5), "md5_image": md5, "genre_id": genre_id, "fans": 100,
            "release_date": release_date, "record_type": record_type,
            "tracklist": f"https://api.deezer.com/album/{album_id}/tracks", "explicit_lyrics": False,
            "type": "album", "_artist": artist_id}
        return album_id

    def set_chart(self, genre_id: int, album_ids: list[int]) -> None:
        self.charts[genre_id] = list(album_ids)

    # ------------------------------------------------------------------------------------------ routes
    def catalogue_routes(self) -> list[web.RouteDef]:
        return [web.get("/genre", self._genres), web.get("/genre/{id}/artists", self._genre_artists),
                web.get("/chart/{id}/albums", self._chart_albums), web.get("/artist/{id}/albums", self._artist_albums)]

    def _artist_json(self, artist_id: int) -> dict[str, Any]:
        return {"id": artist_id, "name": self.artists[artist_id]["name"],
                "link": f"https://www.deezer.com/artist/{artist_id}",
                "picture": f"https://api.deezer.com/artist/{artist_id}/image", "radio": True,
                "tracklist": f"https://api.deezer.com/artist/{artist_id}/top?limit=50", "type": "artist"}

    async def _genres(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [
            {"id": gid, "name": name, "picture": f"https://api.deezer.com/genre/{gid}/image", "type": "genre"}
            for gid, name in self.genre_names.items()]})

    def _genre_id(self, request: web.Request) -> int | None:
        try:
            gid = int(request.match_info["id"])
        except ValueError:
            return None
        return gid if gid in self.genre_names else None

    async def _genre_artists(self, request: web.Request) -> web.Response:
        gid = self._genre_id(request)
        if gid is None:
            return _no_data()
        listed = [a for a, info in self.artists.items() if gid in info["genres"]][:50]
        return web.json_response({"data": [self._artist_json(a) for a in listed]})  # no total, no next

    async def _chart_albums(self, request: web.Request) -> web.Response:
        gid = self._genre_id(request)
        if gid is None:
            return _no_data()
        rows = []
        for position, album_id in enumerate(self.charts.get(gid, []), 1):
            album = {k: v for k, v in self.albums[album_id].items()
                     if k not in ("genre_id", "release_date", "fans", "_artist")}  # a chart's albums lack these
            rows.append({**album, "position": position, "artist": self._artist_json(self.albums[album_id]["_artist"])})
        return self._paged(request, rows, f"chart/{gid}/albums", default_limit=10)

    async def _artist_albums(self, request: web.Request) -> web.Response:
        try:
            artist_id = int(request.match_info["id"])
        except ValueError:
            return _no_data()
        if artist_id not in self.artists or artist_id in self.gone:
            return _no_data()
        rows = [{k: v for k, v in a.items() if k != "_artist"} for a in self.albums.values()
                if a["_artist"] == artist_id]
        return self._paged(request, rows, f"artist/{artist_id}/albums", default_limit=25)

    def _paged(self, request: web.Request, rows: list[dict], path: str, default_limit: int) -> web.Response:
        try:
            index = max(0, int(request.query.get("index", 0)))
            limit = max(1, int(request.query.get("limit", default_limit)))
        except ValueError:
            return web.json_response({"error": {"type": "ParameterException", "message": "Wrong parameter type",
                                                "code": 500}})
        body: dict[str, Any] = {"data": rows[index:index + limit], "total": len(rows)}
        if index + limit < len(rows):
            body["next"] = f"{self.base_url}{path}?" + urlencode({"index": index + limit, "limit": limit})
        if index > 0:
            body["prev"] = f"{self.base_url}{path}?" + urlencode({"index": max(0, index - limit), "limit": limit})
        return web.json_response(body)
