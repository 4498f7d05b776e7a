"""Deezer playlists through Deezer's public API: no key, no sign-in, public playlists only.

The API answers its errors inside an HTTP 200 body, ``{"error": {"type", "message", "code"}}``:
code 4 is the quota (about 50 requests per 5 seconds per IP address: wait and go on), 800 is
"no data" (no such playlist), and an ``OAuthException`` or ``PermissionException`` means the
playlist, or its owner's profile, is private. Tracks come in pages (``index``/``limit``).
``SCORER_DEEZER_API_URL`` points it at a proxy or a test server.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import SplitResult, urlsplit

from scorer.errors import RowError, ServiceError, UsageError
from scorer.services.http import JsonGet
from scorer.services.tracks import Track, shown, smallest_at_least

NAME = "deezer"
DEFAULT_API_URL = "https://api.deezer.com/"
PAGE_LIMIT = 100
REQUEST_TIMEOUT = 15
#: the quota is counted over 5 seconds; wait that long, this many times, before giving up
QUOTA_WAIT_S = 5.0
QUOTA_WAITS = 12
SERVER_RETRIES = 3
#: album cover fields, smallest first, with their size in pixels (the featurizer reads 224)
COVER_SIZES = (("cover_medium", 250), ("cover_big", 500), ("cover_xl", 1000), ("cover", 120))
FORMS = "https://www.deezer.com/[xx/]playlist/ID or deezer:playlist:ID"
HOSTS = ("deezer.com", "www.deezer.com")
SHARE_HOSTS = ("link.deezer.com", "deezer.page.link")

_ID = re.compile(r"[0-9]{1,20}")
_URI = re.compile(r"deezer:([A-Za-z]+):(.*)", re.IGNORECASE | re.DOTALL)
_LANG = re.compile(r"[a-z]{2}(-[a-z]{2})?", re.IGNORECASE)
_TYPES = ("album", "artist", "track", "episode", "show", "podcast", "profile", "radio", "channel", "mixes")


class DeezerAccessError(ServiceError):
    """Deezer refused or failed a request; the message says why and what to do instead."""


class DeezerNoData(DeezerAccessError):
    """Deezer has no such thing (error 800, "no data"): a playlist, genre or artist that is not there (any more)."""


def claims(text: str) -> bool:
    """Whether ``text`` names something on Deezer (a deezer.com link, a share link or a deezer: URI)."""
    if not isinstance(text, str):
        return False
    s = text.strip()
    if s.lower().startswith("deezer:"):
        return True
    url = _split(s)
    return url is not None and (url.hostname in HOSTS or url.hostname in SHARE_HOSTS)


def _split(s: str) -> SplitResult | None:
    """``s`` as a URL (the scheme may be left out); None for text no URL parser should guess at."""
    if any(c.isspace() or not c.isprintable() for c in s):
        return None
    try:
        url = urlsplit(s if "://" in s else f"https://{s}")
        url.hostname  # noqa: B018 - raises ValueError for a malformed host part
    except ValueError:
        return None
    return url


def parse_playlist_id(text: str) -> str:
    """The numeric playlist ID in a deezer.com link (with or without a language part) or a
    ``deezer:playlist:ID`` URI; a :class:`UsageError` for anything else, before any request."""
    s = text.strip()
    quoted = shown(s)
    if m := _URI.fullmatch(s):
        kind, rest = m.group(1).lower(), m.group(2)
        if kind == "playlist" and _ID.fullmatch(rest):
            return rest
        _wrong_kind(quoted, kind)
        raise UsageError(f"not a Deezer playlist: {quoted}; give {FORMS}")
    url = _split(s)
    if url is not None and url.hostname in SHARE_HOSTS:
        raise UsageError(f"{quoted} is a Deezer share link, which only a browser resolves: open it, then give the "
                         f"deezer.com/playlist/ID address it lands on ({FORMS})")
    if url is not None and url.hostname in HOSTS and url.scheme in ("http", "https"):
        parts = [p for p in url.path.split("/") if p]
        if parts and _LANG.fullmatch(parts[0]) and parts[0].lower() not in _TYPES:
            parts = parts[1:]
        if len(parts) == 2 and parts[0] == "playlist" and _ID.fullmatch(parts[1]):
            return parts[1]
        if parts:
            _wrong_kind(quoted, parts[0].lower())
    raise UsageError(f"not a Deezer playlist: {quoted}; give {FORMS}")


def _wrong_kind(quoted: str, kind: str) -> None:
    if kind in _TYPES:
        raise UsageError(f"that is a Deezer {kind}, not a playlist: {quoted}; give {FORMS}")


def api_url() -> str:
    url = os.environ.get("SCORER_DEEZER_API_URL") or DEFAULT_API_URL
    return url if url.endswith("/") else url + "/"


class DeezerClient:
    """GET requests to the public API, with the quota waited out and errors turned into messages."""

    def __init__(self, base_url: str | None = None, sleep=time.sleep):
        import requests

        self.base = base_url or api_url()
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.sleep = sleep
        self.requests = 0  # HTTP requests made, quota answers included
        self.quota_waits = 0  # quota answers waited out

    def get(self, path: str, params: dict[str, Any] | None = None, playlist_id: str | None = None,
            what: str | None = None) -> dict:
        """The answer's JSON object; ``what`` names the thing asked for in an error (else: a playlist)."""
        ask = JsonGet("the Deezer API", DeezerAccessError, REQUEST_TIMEOUT, busy=range(500, 600),
                      retries=SERVER_RETRIES, sleep=self.sleep, before=self._count)
        quota = 0
        while True:
            body, _ = ask(self.session, self.base, path, params)
            error = body.get("error") if isinstance(body, dict) else None
            if not error:
                return body if isinstance(body, dict) else {}
            code = error.get("code") if isinstance(error, dict) else None
            if code == 4 and quota < QUOTA_WAITS:  # quota: about 50 requests per 5 s
                quota += 1
                self.quota_waits += 1
                self.sleep(QUOTA_WAIT_S)
                continue
            raise _access_error(error if isinstance(error, dict) else {}, playlist_id, what)

    def _count(self) -> None:
        self.requests += 1


def _access_error(error: dict, playlist_id: str | None, thing: str | None = None) -> DeezerAccessError:
    code, kind, message = error.get("code"), error.get("type") or "", error.get("message") or ""
    what = thing or (f"Deezer playlist {playlist_id}" if playlist_id else "that Deezer playlist")
    if code == 800:
        return DeezerNoData(f"{what} does not exist (Deezer: no data)" + ("" if thing else "; check the link"))
    if thing and code != 4:
        return DeezerAccessError(f"Deezer refused {what}: {kind or 'error'} {code}: {message}".strip())
    if kind in ("OAuthException", "PermissionException") or code == 200:
        return DeezerAccessError(f"{what} is private: Deezer's public API reads public playlists only. Make it "
                                 "public in Deezer, or copy its tracks into a public playlist of yours")
    if code == 4:
        return DeezerAccessError("Deezer's request quota stayed exceeded for a minute (about 50 requests per 5 "
                                 "seconds per IP address, shared with other programs here); try again later")
    return DeezerAccessError(f"Deezer refused: {kind or 'error'} {code}: {message}".strip())


def pick_cover(album: dict, size: int = 224) -> str | None:
    """The smallest album cover at least ``size`` pixels wide, else the largest there is."""
    sized = [(px, album[f]) for f, px in COVER_SIZES if isinstance(album.get(f), str) and album[f]]
    return smallest_at_least(sized, size) if sized else None


def _added_at(value: Any) -> str | None:
    if isinstance(value, (int, float)) and value > 0:
        return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def _track(position: int, item: Any) -> Track:
    item = item if isinstance(item, dict) else {}
    album = item.get("album") if isinstance(item.get("album"), dict) else {}
    artist = item.get("artist") if isinstance(item.get("artist"), dict) else {}
    track = Track(position, str(item["id"]) if item.get("id") is not None else None, item.get("title") or None,
                  artist.get("name") or None, album.get("title") or None,
                  str(album["id"]) if album.get("id") is not None else None, None, _added_at(item.get("time_add")),
                  artist_id=str(artist["id"]) if artist.get("id") is not None else None)
    kind = item.get("type", "track")
    if not item:
        track.error = RowError("not_a_track", "empty playlist entry")
    elif kind != "track":
        track.error = RowError("not_a_track", f"a {kind}, not a music track")
    elif (cover := pick_cover(album)) is None:
        track.error = RowError("no_cover", "the album has no cover image on Deezer")
    else:
        track.cover_url = cover
    return track


def read_playlist(client: DeezerClient, playlist_id: str) -> tuple[dict, list[Track]]:
    """The playlist's ``{id, name, owner, owner_id, total}`` and every track, in playlist order.

    Raises :class:`DeezerAccessError` when Deezer refuses (no such playlist, private, quota)."""
    meta = client.get(f"playlist/{playlist_id}", playlist_id=playlist_id)
    tracks: list[Track] = []
    while True:
        page = client.get(f"playlist/{playlist_id}/tracks", {"index": len(tracks), "limit": PAGE_LIMIT},
                          playlist_id=playlist_id)
        data = listed if isinstance(listed := page.get("data"), list) else []
        tracks += [_track(len(tracks) + i, item) for i, item in enumerate(data)]
        if not data or not page.get("next"):
            break
    creator = raw if isinstance(raw := meta.get("creator"), dict) else {}
    total = meta.get("nb_tracks")
    info = {"id": str(meta.get("id") or playlist_id), "name": meta.get("title"), "owner": creator.get("name"),
            "owner_id": str(creator["id"]) if creator.get("id") is not None else None,
            "total": total if isinstance(total, int) else len(tracks)}
    return info, tracks


# ---------------------------------------------------------------------------------------------- the catalogue
# What the public API answers, as read in deezer-python's recorded answers (tests/cassettes of
# browniebroke/deezer-python): ``/genre`` is ``{"data": [{"id", "name", ...}]}`` in one piece, with id 0 "All";
# ``/genre/{id}/artists`` is one unpaged list of the genre's artists (about 50); ``/artist/{id}/albums`` and
# ``/chart/{id}/albums`` are pages (``index``/``limit``) with ``total`` and, while more remain, ``next``. An
# artist's albums carry ``genre_id``, ``record_type`` (album, single, ep, compile), ``release_date`` and the
# covers, but no artist; a chart's albums carry ``artist`` and ``record_type``, but no ``genre_id``.


@dataclass
class Page:
    """One page of a paged list: its items, Deezer's ``total``, and whether a ``next`` page exists."""

    items: list[dict]
    total: int | None
    more: bool


def _id_of(value: Any) -> str | None:
    return str(value) if isinstance(value, (int, str)) and str(value).strip() else None


def list_genres(client: DeezerClient) -> list[dict]:
    """Deezer's genres, ``[{"id": int, "name": str}]``, in Deezer's order (id 0, "All", included)."""
    body = client.get("genre", what="Deezer's list of genres")
    return [{"id": g["id"], "name": g["name"]} for g in _data(body)
            if isinstance(g.get("id"), int) and isinstance(g.get("name"), str)]


def genre_artists(client: DeezerClient, genre_id: int) -> list[dict]:
    """The artists Deezer lists for a genre, ``[{"id": str, "name": str}]``."""
    body = client.get(f"genre/{genre_id}/artists", what=f"Deezer genre {genre_id}")
    return [{"id": aid, "name": a.get("name") or ""} for a in _data(body) if (aid := _id_of(a.get("id")))]


def chart_albums(client: DeezerClient, genre_id: int, index: int, limit: int = PAGE_LIMIT) -> Page:
    """A page of the genre's album chart: ``{"id", "title", "record_type", "artist_id", "artist"}`` each."""
    body = client.get(f"chart/{genre_id}/albums", {"index": index, "limit": limit},
                      what=f"the chart of Deezer genre {genre_id}")
    items = []
    for a in _data(body):
        artist = raw if isinstance(raw := a.get("artist"), dict) else {}
        if (album_id := _id_of(a.get("id"))) and (artist_id := _id_of(artist.get("id"))):
            items.append({"id": album_id, "title": a.get("title") or "", "record_type": a.get("record_type") or "",
                          "artist_id": artist_id, "artist": artist.get("name") or ""})
    return _page(body, items)


def artist_albums(client: DeezerClient, artist_id: str, index: int, limit: int = PAGE_LIMIT) -> Page:
    """A page of an artist's albums: ``{"id", "title", "genre_id", "record_type", "release_date", "cover"}``
    each, ``cover`` being ``cover_medium`` (250 px; "" when the album has none)."""
    body = client.get(f"artist/{artist_id}/albums", {"index": index, "limit": limit},
                      what=f"Deezer artist {artist_id}")
    items = []
    for a in _data(body):
        if album_id := _id_of(a.get("id")):
            genre = a.get("genre_id")
            items.append({"id": album_id, "title": a.get("title") or "",
                          "genre_id": genre if isinstance(genre, int) else None,
                          "record_type": a.get("record_type") or "", "release_date": a.get("release_date") or "",
                          "cover": a.get("cover_medium") if isinstance(a.get("cover_medium"), str) else ""})
    return _page(body, items)


def _data(body: dict) -> list[dict]:
    data = body.get("data")
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def _page(body: dict, items: list[dict]) -> Page:
    total = body.get("total")
    return Page(items, total if isinstance(total, int) else None, bool(body.get("next")) and bool(_data(body)))
