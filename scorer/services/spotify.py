"""Spotify playlists as a source: read a playlist's tracks with their album covers, and save a playlist.

Importing this module does not import spotipy (``parse_playlist_id`` and ``pick_cover`` work without it);
``make_client``, ``read_playlist``, ``save_playlist`` and ``TokenFileCache`` load it when first used.
Base URLs come from ``SCORER_SPOTIFY_API_URL`` and ``SCORER_SPOTIFY_ACCOUNTS_URL`` so tests can point
everything at a loopback fake.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scorer.errors import RowError, ServiceError, UsageError
from scorer.services.tracks import Track, shown, smallest_at_least

if TYPE_CHECKING:
    import spotipy

log = logging.getLogger(__name__)

#: Spotify-owned editorial and algorithmic playlists (Discover Weekly, Daily Mix, ...) have IDs starting so.
EDITORIAL_PREFIX = "37i9dQZF1"
#: Items per page: Get Playlist Items documents a maximum of 50 (it was 100 before the 2026 changes).
PAGE_LIMIT = 50
#: Add Items to Playlist takes at most 100 URIs per request.
ADD_CHUNK = 100
PLAYLIST_FIELDS = "id,name,owner(id,display_name),items(total),tracks(total)"

_ID = re.compile(r"[0-9A-Za-z]{22}")
_URI = re.compile(r"spotify:([A-Za-z]+):(.*)", re.IGNORECASE | re.DOTALL)
_INTL = re.compile(r"intl-[a-z]{2}", re.IGNORECASE)
_TYPES = ("album", "artist", "track", "episode", "show", "audiobook", "chapter", "user", "genre", "concert")
_FORMS = ("a playlist ID (22 letters and digits), spotify:playlist:ID, "
          "or a link like https://open.spotify.com/playlist/ID")


class SpotifyAccessError(ServiceError):
    """Spotify refused or failed a request; the message says why and what to do instead."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------------------------- parsing


def parse_playlist_id(text: str) -> str:
    """The 22-character playlist ID in a bare ID, a ``spotify:playlist:`` URI or an open.spotify.com link."""
    if not isinstance(text, str):
        raise UsageError(f"expected a Spotify playlist as text, got {type(text).__name__}; give {_FORMS}")
    s = text.strip()
    if _ID.fullmatch(s):
        return s
    if m := _URI.fullmatch(s):
        kind, rest = m.group(1).lower(), m.group(2)
        if kind == "user":  # the old form spotify:user:NAME:playlist:ID
            kind, sep, rest = rest.partition(":")[2].partition(":")
            kind = kind.lower() if sep else "user"
        if kind == "playlist" and _ID.fullmatch(rest):
            return rest
        _wrong_kind(text, kind)
    elif not any(c.isspace() or not c.isprintable() for c in s):  # urlsplit would silently drop some
        parts = _link_path(s)
        if parts and _INTL.fullmatch(parts[0]):
            parts = parts[1:]
        if len(parts) == 4 and parts[0] == "user":  # the old form /user/NAME/playlist/ID
            parts = parts[2:]
        if len(parts) == 2 and parts[0] == "playlist" and _ID.fullmatch(parts[1]):
            return parts[1]
        if parts:
            _wrong_kind(text, parts[0].lower())
    raise UsageError(f"not a Spotify playlist: {shown(text)}; give {_FORMS}")


def claims(text: str) -> bool:
    """Whether ``text`` names something on Spotify: a ``spotify:`` URI, a spotify.com or spotify.link address, or
    a bare playlist ID."""
    if not isinstance(text, str):
        return False
    s = text.strip()
    if s.lower().startswith("spotify:") or _ID.fullmatch(s):
        return True
    try:
        host = urlsplit(s if "://" in s else f"https://{s}").hostname or ""
    except ValueError:
        return False
    return host in ("spotify.com", "spotify.link") or host.endswith((".spotify.com", ".spotify.link"))


def _link_path(s: str) -> list[str]:
    """The path segments of an open.spotify.com link (the scheme may be left out); [] for anything else."""
    try:
        url = urlsplit(s if "://" in s else f"https://{s}")
        host = url.hostname
    except ValueError:  # e.g. an unbalanced [ in the host part
        return []
    if host != "open.spotify.com" or url.scheme not in ("http", "https") or url.netloc.lower() != host:
        return []
    return [p for p in url.path.split("/") if p]


def _wrong_kind(text: str, kind: str) -> None:
    """Raise the error for a link or URI to something that is not a playlist (a no-op for a malformed one)."""
    if kind in _TYPES:
        article = "an" if kind[0] in "aeio" else "a"
        raise UsageError(f"that is {article} {kind}, not a playlist: {shown(text)}; give {_FORMS}")


def is_editorial(playlist_id: str) -> bool:
    """Whether the ID is one of Spotify's own editorial or algorithmic playlists."""
    return playlist_id.startswith(EDITORIAL_PREFIX)


def pick_cover(images: list[dict], size: int = 224) -> str | None:
    """The smallest image at least ``size`` pixels on its short side; else the largest; else the first."""
    images = [im for im in images or [] if isinstance(im, dict) and im.get("url")]
    if not images:
        return None
    sized = [(min(im["width"], im["height"]), im["url"]) for im in images
             if isinstance(im.get("width"), int) and isinstance(im.get("height"), int)]
    if not sized:
        return images[0]["url"]
    return smallest_at_least(sized, size)


# -------------------------------------------------------------------------------------------- tracks


def _track(position: int, entry: dict | None) -> Track:
    entry = entry if isinstance(entry, dict) else {}
    # Since February 2026 the entry holds the track under "item"; "track" is the deprecated name.
    item = entry.get("item") or entry.get("track")
    added_at = entry.get("added_at")
    if not isinstance(item, dict):
        return Track(position, None, None, None, None, None, None, added_at,
                     RowError("not_a_track", "empty playlist entry: the track was removed from Spotify"))
    title = item.get("name") or None
    artist = ", ".join(a["name"] for a in item.get("artists") or [] if isinstance(a, dict) and a.get("name"))
    album = raw if isinstance(raw := item.get("album"), dict) else {}
    track = Track(position, item.get("id"), title, artist or None, album.get("name") or None, album.get("id"),
                  None, added_at)
    kind = item.get("type", "track")
    if kind != "track":
        track.error = RowError("not_a_track", f"a podcast {kind}, not a music track" if kind == "episode"
                               else f"a {kind}, not a music track")
    elif entry.get("is_local") or item.get("is_local"):
        track.error = RowError("local_file", "a local file: it has no Spotify album cover")
    elif (cover := pick_cover(album.get("images") or [])) is None:
        track.error = RowError("no_cover", "the album has no cover image on Spotify")
    else:
        track.cover_url = cover
    return track


def read_playlist(sp: spotipy.Spotify, playlist_id: str) -> tuple[dict, list[Track]]:
    """The playlist's ``{id, name, owner, owner_id, total}`` and every entry, in playlist order.

    Raises :class:`SpotifyAccessError` when Spotify refuses (editorial playlist, private, bad credentials,
    rate limited after retries)."""
    playlist_id = parse_playlist_id(playlist_id)
    tracks: list[Track] = []
    with _spotify_errors(sp, playlist_id):
        meta = sp.playlist(playlist_id, fields=PLAYLIST_FIELDS) or {}
        page = sp.playlist_items(playlist_id, limit=PAGE_LIMIT, additional_types=("track", "episode"))
        while page:
            tracks += [_track(len(tracks) + i, entry) for i, entry in enumerate(page.get("items") or [])]
            page = sp.next(page) if page.get("next") else None
    owner = meta.get("owner") or {}
    total = (meta.get("items") or meta.get("tracks") or {}).get("total")
    info = {"id": meta.get("id") or playlist_id, "name": meta.get("name"),
            "owner": owner.get("display_name") or owner.get("id"), "owner_id": owner.get("id"),
            "total": total if isinstance(total, int) else len(tracks)}
    return info, tracks


def save_playlist(sp: spotipy.Spotify, name: str, track_ids: list[str], description: str) -> dict:
    """Create a private playlist for the signed-in user holding ``track_ids`` in order; return its JSON."""
    if not name.strip():
        raise UsageError("the new playlist needs a name")
    bad = [t for t in track_ids if not (isinstance(t, str) and _ID.fullmatch(t))]
    if bad:
        raise UsageError(f"not Spotify track IDs: {', '.join(map(shown, bad[:5]))}")
    with _spotify_errors(sp, None):
        created = sp.current_user_playlist_create(name, public=False, description=description)
        for start in range(0, len(track_ids), ADD_CHUNK):
            sp.playlist_add_items(created["id"], [f"spotify:track:{t}" for t in track_ids[start:start + ADD_CHUNK]])
    return created


# ---------------------------------------------------------------------------------------------- errors


@contextlib.contextmanager
def _spotify_errors(sp: spotipy.Spotify, playlist_id: str | None) -> Iterator[None]:
    """Turn spotipy's and requests' exceptions into :class:`SpotifyAccessError` with advice, never secrets."""
    import requests
    from spotipy.exceptions import SpotifyException, SpotifyOauthError

    try:
        yield
    except SpotifyException as e:
        raise _api_error(e, playlist_id) from None
    except SpotifyOauthError as e:
        raise _oauth_error(e, sp) from None
    except requests.exceptions.RequestException as e:
        raise SpotifyAccessError(f"could not reach Spotify at {getattr(sp, 'prefix', '?')} ({type(e).__name__}); "
                                 f"check your connection and try again") from None


def _api_error(e: Any, playlist_id: str | None) -> SpotifyAccessError:
    status = e.http_status
    said = str(e.msg).rsplit("\n", 1)[-1].strip()  # spotipy prefixes the request URL
    what = f"playlist {playlist_id}" if playlist_id else "the request"
    if status == 404 and playlist_id and is_editorial(playlist_id):
        msg = (f"playlist {playlist_id} is one of Spotify's own editorial or algorithmic playlists (Discover Weekly, "
               f"Release Radar, Daily Mix..., IDs starting {EDITORIAL_PREFIX}); since November 2024 Spotify "
               f"answers 404 for them to third-party apps. What works instead: open it in Spotify, select all "
               f"tracks, add them to a playlist of your own, and score that one")
    elif status == 404:
        msg = (f"{what} was not found: it does not exist, or it is private. For a private playlist of your own, "
               f"sign in with --user")
    elif status == 401:
        msg = (f"Spotify rejected the credentials for {what} (401: {said}); check SPOTIPY_CLIENT_ID and "
               f"SPOTIPY_CLIENT_SECRET, or sign in again with --user")
    elif status == 403:
        msg = (f"Spotify refused access to {what} (403: {said}). Apps in Spotify's Development Mode may only read "
               f"the tracks of playlists the signed-in user owns or collaborates on, and app credentials have no "
               f"user: sign in with --user, and copy someone else's playlist into one of your own, or give its "
               f"Deezer link if it is on Deezer (no sign-in); saving needs --user too")
    elif status == 429:
        why = str(e.reason) if e.reason else said
        if "429" in why or "Retry-After" in why or not e.reason:
            msg = f"Spotify rate limited this app for {what} ({why}); wait a while and try again"
        else:  # spotipy reports every exhausted retry as 429, a run of 5xx answers too
            msg = f"Spotify kept failing for {what} ({why}); try again later"
    else:
        msg = f"Spotify answered {status} for {what}: {said}"
    return SpotifyAccessError(msg, status)


def _oauth_error(e: Any, sp: spotipy.Spotify) -> SpotifyAccessError:
    error = getattr(e, "error", None) or "error"
    detail = getattr(e, "error_description", None)
    said = f"{error}: {detail}" if detail else str(error)
    if error == "invalid_client":
        return SpotifyAccessError(f"Spotify rejected the app credentials ({said}); check SPOTIPY_CLIENT_ID and "
                                  f"SPOTIPY_CLIENT_SECRET (from developer.spotify.com/dashboard)", 400)
    if error == "invalid_grant":
        cache = getattr(getattr(sp.auth_manager, "cache_handler", None), "path", None)
        where = f": delete {cache} and sign in again with --user" if cache else "; sign in again with --user"
        return SpotifyAccessError(f"the saved Spotify sign-in is no longer valid ({said}){where}", 400)
    return SpotifyAccessError(f"Spotify sign-in failed ({said})", 400)


# the client lives in its own module; these names are this module's too (its users and tests import them here)
from scorer.services.spotify_client import (  # noqa: E402
    DEFAULT_ACCOUNTS_URL,
    DEFAULT_API_URL,
    DEFAULT_REDIRECT_URI,
    MAX_RETRY_AFTER_S,
    REQUESTS_TIMEOUT,
    USER_SCOPES,
    accounts_url,
    api_url,
    default_token_path,
    make_client,
)


def __getattr__(name: str) -> Any:
    """``TokenFileCache``: the client module's, built on first use (importing this module imports no spotipy)."""
    if name == "TokenFileCache":
        from scorer.services import spotify_client

        return spotify_client.TokenFileCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_ACCOUNTS_URL", "DEFAULT_API_URL", "DEFAULT_REDIRECT_URI", "EDITORIAL_PREFIX", "MAX_RETRY_AFTER_S",
    "REQUESTS_TIMEOUT", "USER_SCOPES", "SpotifyAccessError", "accounts_url", "api_url", "default_token_path",
    "is_editorial", "make_client", "parse_playlist_id", "pick_cover", "read_playlist", "save_playlist",
]
