"""The Spotify client: base URLs, sign-in (app credentials or the user's PKCE sign-in, its token kept readable
only by the user), and one HTTP session whose retries honour Retry-After. spotipy is imported when a client is
made, not when this module is."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorer.errors import UsageError

if TYPE_CHECKING:
    import spotipy

log = logging.getLogger("scorer.services.spotify")

DEFAULT_API_URL = "https://api.spotify.com/v1/"
DEFAULT_ACCOUNTS_URL = "https://accounts.spotify.com/"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8888/callback"
USER_SCOPES = ("playlist-read-private", "playlist-read-collaborative",
               "playlist-modify-private", "playlist-modify-public")
REQUESTS_TIMEOUT = 10
#: A 429 whose Retry-After asks for longer than this fails at once instead of sleeping (urllib3 would sleep
#: up to six hours, silently).
MAX_RETRY_AFTER_S = 120


def api_url() -> str:
    return _with_slash(os.environ.get("SCORER_SPOTIFY_API_URL") or DEFAULT_API_URL)


def accounts_url() -> str:
    return _with_slash(os.environ.get("SCORER_SPOTIFY_ACCOUNTS_URL") or DEFAULT_ACCOUNTS_URL)


def _with_slash(url: str) -> str:
    url = url.strip()
    return url if url.endswith("/") else url + "/"


def default_token_path() -> Path:
    base = os.environ.get("SCORER_CONFIG_DIR")
    return (Path(base) if base else Path.home() / ".config" / "scorer") / "spotify-token.json"


def make_client(user: bool = False, cache_path: Path | None = None, open_browser: bool = True) -> spotipy.Spotify:
    """A Spotify client: app-only (client credentials) or, with ``user``, signed in as the user (PKCE).

    The user's token is kept in ``cache_path`` (default :func:`default_token_path`), readable only by them;
    the app token lives in memory only."""
    import spotipy

    _hush_spotipy_debug()
    client_id = os.environ.get("SPOTIPY_CLIENT_ID", "").strip()
    accounts = accounts_url()
    session = _session()
    auth: Any
    if user:
        if not client_id:
            raise UsageError("signing in to Spotify needs your app's client ID: set SPOTIPY_CLIENT_ID (from "
                             "developer.spotify.com/dashboard) and register SPOTIPY_REDIRECT_URI in the app "
                             f"(default {DEFAULT_REDIRECT_URI})")
        redirect = os.environ.get("SPOTIPY_REDIRECT_URI", "").strip() or DEFAULT_REDIRECT_URI
        auth = spotipy.SpotifyPKCE(
            client_id=client_id, redirect_uri=redirect, scope=list(USER_SCOPES), state=secrets.token_urlsafe(16),
            cache_handler=_token_cache_class()(cache_path or default_token_path()), requests_session=session,
            requests_timeout=REQUESTS_TIMEOUT, open_browser=open_browser)
        # spotipy reads these as self.OAUTH_*: instance attributes override the class defaults.
        auth.OAUTH_AUTHORIZE_URL = accounts + "authorize"
        auth.OAUTH_TOKEN_URL = accounts + "api/token"
    else:
        missing = [v for v in ("SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET") if not os.environ.get(v, "").strip()]
        if missing:
            raise UsageError(f"reading Spotify playlists needs app credentials: set {' and '.join(missing)} "
                             f"(client ID and secret from developer.spotify.com/dashboard), or sign in with --user")
        # An explicit cache handler: spotipy's default would write the app token to ./.cache.
        auth = spotipy.SpotifyClientCredentials(
            client_id=client_id, client_secret=os.environ["SPOTIPY_CLIENT_SECRET"].strip(),
            cache_handler=spotipy.MemoryCacheHandler(), requests_session=session, requests_timeout=REQUESTS_TIMEOUT)
        auth.OAUTH_TOKEN_URL = accounts + "api/token"
    sp = spotipy.Spotify(auth_manager=auth, requests_session=session, requests_timeout=REQUESTS_TIMEOUT)
    sp.prefix = api_url()
    return sp


class _NoDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def _hush_spotipy_debug() -> None:
    """spotipy logs request headers at DEBUG: the client secret (Basic, base64) and bearer tokens. Drop those
    records whatever logging level the application sets."""
    for name in ("spotipy.client", "spotipy.oauth2"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoDebug) for f in logger.filters):
            logger.addFilter(_NoDebug())


def _session() -> Any:
    """A requests session retrying like spotipy's own (3 tries, 429/5xx, Retry-After honoured), with
    :func:`_retry_class`'s two refinements."""
    import requests

    retry = _retry_class()(total=3, connect=None, read=False, status=3, backoff_factor=0.3,
                           allowed_methods=frozenset({"GET", "POST", "PUT", "DELETE"}),
                           status_forcelist=(429, 500, 502, 503, 504))
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_RETRY: Any = None


def _retry_class() -> Any:
    """spotipy's Retry, but a POST is retried only on 429 (after a 5xx the tracks may already have been
    added), and a Retry-After over :data:`MAX_RETRY_AFTER_S` fails at once."""
    global _RETRY
    if _RETRY is None:
        from spotipy.util import Retry
        from urllib3.exceptions import MaxRetryError, ResponseError

        class SpotifyRetry(Retry):
            def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
                if method.upper() == "POST" and status_code != 429:
                    return False
                return super().is_retry(method, status_code, has_retry_after)

            def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                          error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> Any:
                if response is not None and response.status == 429:
                    wait = self.get_retry_after(response)
                    if wait is not None and wait > MAX_RETRY_AFTER_S:
                        reason = ResponseError(f"429 with Retry-After {wait:.0f} s")
                        raise MaxRetryError(_pool, url, reason) from None
                return super().increment(method, url, response=response, error=error, _pool=_pool,
                                         _stacktrace=_stacktrace)

        _RETRY = SpotifyRetry
    return _RETRY


# ------------------------------------------------------------------------------------------ token cache


class _TokenFile:
    """The user's Spotify token as JSON in one file only they can read; see :data:`TokenFileCache`."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._warned = False

    def get_cached_token(self) -> dict | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as e:
            self._warn(f"cannot read the Spotify token cache {self.path}: {e.strerror}")
            return None
        with os.fdopen(fd, encoding="utf-8") as f:
            st = os.fstat(f.fileno())
            if os.name == "posix" and (st.st_mode & 0o077 or st.st_uid != os.getuid()):
                self._warn(f"ignoring the Spotify token cache {self.path}: other users can access it "
                           f"(mode {st.st_mode & 0o777:o}); delete it and sign in again")
                return None
            try:
                token = json.load(f)
            except (ValueError, UnicodeDecodeError):
                self._warn(f"ignoring the Spotify token cache {self.path}: it is not valid JSON")
                return None
        return token if isinstance(token, dict) and token.get("access_token") else None

    def save_token_to_cache(self, token_info: dict) -> None:
        """Write atomically: a private temp file in the same folder, then rename over the cache."""
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        try:
            if not self.path.parent.is_dir():
                self.path.parent.mkdir(mode=0o700, parents=True)
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(token_info, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            log.warning("could not save the Spotify sign-in to %s (%s); you will be asked to sign in again",
                        self.path, e.strerror or type(e).__name__)

    def _warn(self, message: str) -> None:
        if not self._warned:  # spotipy reads the cache before every request
            log.warning(message)
            self._warned = True


def _token_cache_class() -> Any:
    global _TOKEN_CACHE
    if _TOKEN_CACHE is None:
        from spotipy import CacheHandler

        _TOKEN_CACHE = type("TokenFileCache", (_TokenFile, CacheHandler),
                            {"__module__": __name__, "__qualname__": "TokenFileCache", "__doc__": _TokenFile.__doc__})
    return _TOKEN_CACHE


_TOKEN_CACHE: Any = None


def __getattr__(name: str) -> Any:
    """``TokenFileCache(path)``: :class:`_TokenFile` as a ``spotipy.CacheHandler``, built on first use so that
    importing this module does not import spotipy."""
    if name == "TokenFileCache":
        return _token_cache_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
