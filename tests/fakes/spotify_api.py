"""A fake Spotify Web API and Accounts service: a real aiohttp server on 127.0.0.1, in a background thread.

It speaks the protocol as Spotify documents it since the February 2026 changes: playlist entries under
``/playlists/{id}/items`` (the old ``/tracks`` path answers 403) served, as to every Development Mode app,
only to a signed-in user who owns or collaborates on the playlist (403 otherwise, and always to app
credentials; ``owner_only_items=False`` plays an app from before the changes), entries holding the track under ``item``
(some configured under the deprecated ``track``), pages of at most 50, editorial playlists (IDs starting
``37i9dQZF1``) answering 404, tokens from ``/api/token`` for the client-credentials, PKCE
authorization-code and refresh-token grants, and every ``/v1`` call checked for a bearer token it issued.

Data is configured in Python::

    with FakeSpotify() as fake:
        fake.add_playlist("3cEYpjA9oz9GiPac4AsH4n", "Mine", owner="alice",
                          items=[fake.entry(fake.track("Song", "Artist", "Album"))])
        fake.rate_limit("3cEYpjA9oz9GiPac4AsH4n", offset=50)   # that page answers 429 once
        ...
        fake.requests   # [Request(method, path, query, status, body), ...]
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .loopback import LoopbackServer

EDITORIAL_PREFIX = "37i9dQZF1"
BASE62 = string.digits + string.ascii_letters


def new_id() -> str:
    """A random 22-character base62 Spotify ID."""
    return "".join(secrets.choice(BASE62) for _ in range(22))


@dataclass(frozen=True)
class Request:
    """One request the fake answered. Token-endpoint bodies are never kept (they hold secrets)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    body: Any = None


@dataclass
class _Token:
    kind: str  # "app" or "user"
    scope: frozenset[str] = frozenset()
    expires_at: float = 0.0


@dataclass
class _Playlist:
    name: str
    owner: str
    items: list[dict | None]
    description: str = ""
    public: bool = True
    snapshot: int = 1
    collaborators: tuple[str, ...] = ()
    rate_limits: dict[int, list[str]] = field(default_factory=dict)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status, headers=headers)


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


class FakeSpotify:
    """The fake service. Use as a context manager; ``api_url`` ends in ``/v1/``, ``accounts_url`` in ``/``."""

    def __init__(self, client_id: str = "fake-client-id", client_secret: str = "fake-client-secret",
                 cover_base: str = "http://127.0.0.1:9/covers", user_id: str = "fakeuser",
                 page_default: int = 20, page_max: int = 50, owner_only_items: bool = True):
        self.client_id = client_id
        self.client_secret = client_secret
        self.cover_base = cover_base.rstrip("/")
        self.user = {"id": user_id, "display_name": user_id.title(), "type": "user", "uri": f"spotify:user:{user_id}"}
        self.page_default = page_default
        self.page_max = page_max
        #: Development Mode since 2026 (every app a person can create today): items only of playlists the
        #: signed-in user owns or collaborates on, else 403; an app-credentials token has no user, so always
        #: 403. False: an app from before the changes, for which Spotify postponed some of them.
        self.owner_only_items = owner_only_items
        self.playlists: dict[str, _Playlist] = {}
        self._tracks: dict[str, dict] = {}
        self._tokens: dict[str, _Token] = {}
        self._refresh: dict[str, frozenset[str]] = {}
        self._codes: dict[str, dict[str, str]] = {}
        self._log: list[Request] = []
        self._failures: dict[tuple[str, str], list[int]] = {}
        self._lock = threading.Lock()
        self.base_url = ""

    # ------------------------------------------------------------------------------------------ lifecycle

    def __enter__(self) -> FakeSpotify:
        app = web.Application(middlewares=[self._record])
        app.add_routes([
            web.post("/api/token", self._token),
            web.get("/authorize", self._authorize),
            web.get("/v1/me", self._me),
            web.post("/v1/me/playlists", self._create_playlist),
            web.route("*", "/v1/users/{user}/playlists", self._removed),
            web.get("/v1/playlists/{id}", self._playlist),
            web.get("/v1/playlists/{id}/items", self._items),
            web.post("/v1/playlists/{id}/items", self._add_items),
            web.route("*", "/v1/playlists/{id}/tracks", self._removed),
        ])
        self._server = LoopbackServer(app, access_log=None)
        self.base_url = f"http://127.0.0.1:{self._server.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1/"

    @property
    def accounts_url(self) -> str:
        return f"{self.base_url}/"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._log)

    # -------------------------------------------------------------------------------------- configuration

    def track(self, name: str, artists: str | list[str], album: str, *, track_id: str | None = None,
              album_id: str | None = None, images: bool = True) -> dict:
        """A track object as Spotify returns it; the album has covers at 640, 300 and 64 px unless not ``images``."""
        track_id = track_id or new_id()
        album_id = album_id or new_id()
        names = [artists] if isinstance(artists, str) else artists
        obj = {
            "type": "track", "id": track_id, "name": name, "uri": f"spotify:track:{track_id}", "is_local": False,
            "href": f"{self.api_url}tracks/{track_id}", "duration_ms": 200_000, "explicit": False,
            "artists": [{"type": "artist", "id": new_id(), "name": n} for n in names],
            "album": {"type": "album", "album_type": "album", "id": album_id, "name": album,
                      "uri": f"spotify:album:{album_id}", "images": self.images(album_id) if images else []},
        }
        self._tracks[track_id] = obj
        return obj

    def images(self, album_id: str) -> list[dict]:
        """Spotify's three album cover sizes, largest first, on the ``cover_base`` CDN."""
        return [{"url": f"{self.cover_base}/image/{self.cover_hash(album_id, px)}", "width": px, "height": px}
                for px in (640, 300, 64)]

    @staticmethod
    def cover_hash(album_id: str, px: int) -> str:
        return hashlib.sha1(f"{album_id}/{px}".encode()).hexdigest()

    @staticmethod
    def local_track(name: str, artist: str, album: str) -> dict:
        """A local file in a playlist: no ID, no URI base62, no album images."""
        uri = f"spotify:local:{artist}:{album}:{name}:180".replace(" ", "+")
        return {"type": "track", "id": None, "name": name, "uri": uri, "is_local": True,
                "artists": [{"type": "artist", "id": None, "name": artist}],
                "album": {"type": "album", "id": None, "name": album, "images": []}}

    def episode(self, name: str, show: str) -> dict:
        episode_id = new_id()
        return {"type": "episode", "id": episode_id, "name": name, "uri": f"spotify:episode:{episode_id}",
                "is_local": False, "show": {"type": "show", "id": new_id(), "name": show,
                                            "images": self.images(episode_id)}}

    def entry(self, item: dict | None, *, key: str = "item", added_at: str = "2025-05-01T12:00:00Z") -> dict:
        """A playlist entry; ``key="track"`` gives the pre-2026 shape."""
        is_local = bool(item and item.get("is_local"))
        return {"added_at": added_at, "added_by": {"id": self.user["id"], "type": "user"},
                "is_local": is_local, "primary_color": None, key: item}

    def add_playlist(self, playlist_id: str, name: str, items: list[dict | None], owner: str = "someone",
                     collaborators: tuple[str, ...] = ()) -> None:
        self.playlists[playlist_id] = _Playlist(name, owner, list(items), collaborators=collaborators)

    def rate_limit(self, playlist_id: str, offset: int, retry_after: str = "1", times: int = 1) -> None:
        """The items page at ``offset`` answers 429 with this Retry-After the next ``times`` times."""
        self.playlists[playlist_id].rate_limits[offset] = [retry_after] * times

    def fail(self, method: str, path: str, status: int = 503, times: int = 1) -> None:
        """The next ``times`` requests to ``method path`` (path without query) answer ``status``."""
        self._failures[(method, path)] = [status] * times

    def issue_user_token(self, scope: tuple[str, ...] | list[str], expires_in: int = 3600) -> dict:
        """Sign a user in out of band: the token_info spotipy would have cached (expired if ``expires_in`` < 0)."""
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._tokens[access] = _Token("user", frozenset(scope), time.time() + expires_in)
        self._refresh[refresh] = frozenset(scope)
        return {"access_token": access, "token_type": "Bearer", "expires_in": expires_in, "scope": " ".join(scope),
                "refresh_token": refresh, "expires_at": int(time.time()) + expires_in}

    @property
    def issued_tokens(self) -> list[str]:
        """Every access and refresh token handed out so far (for checking none of them leaks)."""
        return [*self._tokens, *self._refresh]

    def revoke_refresh_tokens(self) -> None:
        """The user removed the app's access on spotify.com: refreshing now fails with invalid_grant."""
        self._refresh.clear()

    def register_code(self, client_id: str, redirect_uri: str, code_challenge: str, scope: str = "") -> str:
        """What the user agreeing on the /authorize page produces: a one-time code bound to the PKCE challenge."""
        code = secrets.token_urlsafe(32)
        self._codes[code] = {"client_id": client_id, "redirect_uri": redirect_uri, "challenge": code_challenge,
                             "scope": scope}
        return code

    # ------------------------------------------------------------------------------------------ accounts

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = None
        if request.path.startswith("/v1/") and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = await request.text()
        failures = self._failures.get((request.method, request.path))
        response = _error(failures.pop(0), "Service unavailable") if failures else await handler(request)
        with self._lock:
            self._log.append(Request(request.method, request.path, dict(request.query), response.status, body))
        return response

    async def _token(self, request: web.Request) -> web.Response:  # noqa: PLR0911
        if request.content_type != "application/x-www-form-urlencoded":
            return _oauth_error("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        form = await request.post()
        grant = form.get("grant_type")
        if grant == "client_credentials":
            client = self._basic_client(request) or (form.get("client_id"), form.get("client_secret"))
            if client[0] != self.client_id:
                return _oauth_error("invalid_client", "Invalid client")
            if client[1] != self.client_secret:
                return _oauth_error("invalid_client", "Invalid client secret")
            return web.json_response(self._issue("app", frozenset(), refresh=False))
        if grant == "authorization_code":
            code = self._codes.pop(str(form.get("code")), None)
            if code is None:
                return _oauth_error("invalid_grant", "Invalid authorization code")
            if form.get("client_id") != code["client_id"]:
                return _oauth_error("invalid_client", "Invalid client")
            if form.get("redirect_uri") != code["redirect_uri"]:
                return _oauth_error("invalid_grant", "Invalid redirect URI")
            digest = hashlib.sha256(str(form.get("code_verifier", "")).encode()).digest()
            if base64.urlsafe_b64encode(digest).decode().rstrip("=") != code["challenge"]:
                return _oauth_error("invalid_grant", "code_verifier was incorrect")
            return web.json_response(self._issue("user", frozenset(code["scope"].split()), refresh=True))
        if grant == "refresh_token":
            if form.get("client_id") != self.client_id:
                return _oauth_error("invalid_client", "Invalid client")
            scope = self._refresh.pop(str(form.get("refresh_token")), None)  # PKCE refresh tokens rotate
            if scope is None:
                return _oauth_error("invalid_grant", "Invalid refresh token")
            return web.json_response(self._issue("user", scope, refresh=True))
        return _oauth_error("unsupported_grant_type", "grant_type must be client_credentials, authorization_code "
                                                      "or refresh_token")

    def _basic_client(self, request: web.Request) -> tuple[str, str] | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return ("", "")
        return user, password

    def _issue(self, kind: str, scope: frozenset[str], refresh: bool) -> dict:
        access = secrets.token_urlsafe(24)
        self._tokens[access] = _Token(kind, scope, time.time() + 3600)
        out: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": 3600}
        if refresh:
            token = secrets.token_urlsafe(24)
            self._refresh[token] = scope
            out.update(refresh_token=token, scope=" ".join(sorted(scope)))
        return out

    async def _authorize(self, request: web.Request) -> web.Response:
        """The consent page, with the user agreeing at once: redirect back with a code."""
        q = request.query
        if q.get("client_id") != self.client_id:
            return web.Response(status=400, text="INVALID_CLIENT: Invalid client")
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return web.Response(status=400, text="invalid_request")
        code = self.register_code(q["client_id"], q.get("redirect_uri", ""), q["code_challenge"], q.get("scope", ""))
        back = {"code": code} | ({"state": q["state"]} if "state" in q else {})
        return web.Response(status=302, headers={"Location": f"{q.get('redirect_uri')}?{urlencode(back)}"})

    # ----------------------------------------------------------------------------------------------- API

    def _auth(self, request: web.Request, user: bool = False) -> _Token | web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return _error(401, "No token provided")
        token = self._tokens.get(header[7:])
        if token is None:
            return _error(401, "Invalid access token")
        if token.expires_at < time.time():
            return _error(401, "The access token expired")
        if user and token.kind != "user":
            return _error(401, "This request requires user authentication.")
        return token

    def _find(self, request: web.Request) -> _Playlist | web.Response:
        pid = request.match_info["id"]
        if pid.startswith(EDITORIAL_PREFIX) or pid not in self.playlists:
            return _error(404, "Resource not found")
        return self.playlists[pid]

    def _authorized_playlist(self, request: web.Request, user: bool = False
                             ) -> tuple[_Token, _Playlist] | web.Response:
        """The token and the playlist of a /playlists/{id}… request, or the error response (401 before 404)."""
        auth = self._auth(request, user=user)
        if isinstance(auth, web.Response):
            return auth
        pl = self._find(request)
        return pl if isinstance(pl, web.Response) else (auth, pl)

    async def _removed(self, request: web.Request) -> web.Response:
        """Endpoints Spotify removed for Development Mode apps in 2026: /playlists/{id}/tracks and
        /users/{id}/playlists."""
        return _error(403, "Forbidden")

    async def _me(self, request: web.Request) -> web.Response:
        auth = self._auth(request, user=True)
        return auth if isinstance(auth, web.Response) else web.json_response(self.user)

    def _playlist_json(self, pid: str, pl: _Playlist) -> dict:
        summary = {"href": f"{self.api_url}playlists/{pid}/items", "total": len(pl.items)}
        return {"id": pid, "name": pl.name, "type": "playlist", "uri": f"spotify:playlist:{pid}",
                "href": f"{self.api_url}playlists/{pid}", "description": pl.description, "public": pl.public,
                "collaborative": False, "snapshot_id": f"snap{pl.snapshot}",
                "owner": {"id": pl.owner, "display_name": pl.owner.title(), "type": "user",
                          "uri": f"spotify:user:{pl.owner}"},
                "items": summary, "tracks": summary}

    async def _playlist(self, request: web.Request) -> web.Response:
        found = self._authorized_playlist(request)
        if isinstance(found, web.Response):
            return found
        return web.json_response(self._playlist_json(request.match_info["id"], found[1]))

    async def _items(self, request: web.Request) -> web.Response:
        found = self._authorized_playlist(request)
        if isinstance(found, web.Response):
            return found
        auth, pl = found
        if self.owner_only_items and (auth.kind != "user" or self.user["id"] not in (pl.owner, *pl.collaborators)):
            return _error(403, "Forbidden")
        try:
            limit = int(request.query.get("limit", self.page_default))
            if not 1 <= limit <= self.page_max:
                raise ValueError
        except ValueError:
            return _error(400, "Invalid limit")
        try:
            offset = int(request.query.get("offset", 0))
            if offset < 0:
                raise ValueError
        except ValueError:
            return _error(400, "Invalid offset")
        waits = pl.rate_limits.get(offset)
        if waits:
            return _error(429, "API rate limit exceeded", headers={"Retry-After": waits.pop(0)})
        total = len(pl.items)

        def page_url(at: int) -> str:
            return str(request.url.update_query(offset=at, limit=limit))

        return web.json_response({
            "href": page_url(offset), "limit": limit, "offset": offset, "total": total,
            "next": page_url(offset + limit) if offset + limit < total else None,
            "previous": page_url(max(offset - limit, 0)) if offset > 0 else None,
            "items": pl.items[offset:offset + limit],
        })

    async def _create_playlist(self, request: web.Request) -> web.Response:
        auth = self._auth(request, user=True)
        if isinstance(auth, web.Response):
            return auth
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Error parsing JSON.")
        if not isinstance(body, dict) or not body.get("name"):
            return _error(400, "Missing required field: name")
        public = body.get("public", True) is not False
        needed = "playlist-modify-public" if public else "playlist-modify-private"
        if needed not in auth.scope:
            return _error(403, "Insufficient client scope")
        pid = new_id()
        self.playlists[pid] = _Playlist(body["name"], self.user["id"], [], body.get("description") or "", public)
        return web.json_response(self._playlist_json(pid, self.playlists[pid]), status=201)

    async def _add_items(self, request: web.Request) -> web.Response:  # noqa: PLR0911
        found = self._authorized_playlist(request, user=True)
        if isinstance(found, web.Response):
            return found
        auth, pl = found
        if pl.owner != self.user["id"]:
            return _error(403, "Forbidden")
        if ("playlist-modify-public" if pl.public else "playlist-modify-private") not in auth.scope:
            return _error(403, "Insufficient client scope")
        position = request.query.get("position")
        if "uris" in request.query:  # URIs in the query string win over the body, as documented
            uris: Any = request.query["uris"].split(",")
        else:
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "Error parsing JSON.")
            if isinstance(body, dict):
                uris, position = body.get("uris"), body.get("position", position)
            else:  # spotipy sends the bare JSON array, which Spotify accepts too
                uris = body
        if not isinstance(uris, list) or not uris:
            return _error(400, "No uris provided")
        if len(uris) > 100:
            return _error(400, "You can add a maximum of 100 tracks per request.")
        entries = []
        for uri in uris:
            kind, _, tid = str(uri).removeprefix("spotify:").partition(":")
            if kind != "track" or len(tid) != 22 or any(c not in BASE62 for c in tid):
                return _error(400, f"Invalid track uri: {uri}")
            track = self._tracks.get(tid) or self.track(f"Track {tid}", "Unknown", "Unknown", track_id=tid)
            entries.append(self.entry(track))
        at = len(pl.items) if position is None else int(position)
        pl.items[at:at] = entries
        pl.snapshot += 1
        return web.json_response({"snapshot_id": f"snap{pl.snapshot}"}, status=201)
