"""Album release groups by genre tag from MusicBrainz's search API, and their Cover Art Archive covers.

MusicBrainz's rules for its API (musicbrainz.org/doc/MusicBrainz_API/Rate_Limiting): at most one
request per second from one IP address, and a User-Agent naming the application, its version and a
contact; faster clients get HTTP 503, anonymous ones 403. So every request here is paced one
second apart and names ``--contact``; 503 answers are waited out (``Retry-After`` when given).
The search is Lucene: ``tag:"indie"`` also matches ``indie rock``, so results are kept only when
the release group carries the tag itself. ``SCORER_MUSICBRAINZ_URL`` and ``SCORER_COVERART_URL``
point at a mirror or a test server.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from scorer.errors import ServiceError, UsageError
from scorer.services.http import JsonGet
from scorer.version import __version__

NAME = "musicbrainz"
DEFAULT_API_URL = "https://musicbrainz.org/ws/2/"
DEFAULT_COVERART_URL = "https://coverartarchive.org/"
#: the hosts whose rules say one request per second; a mirror of your own may allow more
RATE_LIMITED_HOSTS = ("musicbrainz.org", "coverartarchive.org")
MIN_INTERVAL_S = 1.0
PAGE_LIMIT = 100  # the search API's largest page
REQUEST_TIMEOUT = 30
#: 503 answers (too fast, or the servers too busy): wait, doubling from this, this many times
BUSY_WAIT_S = 2.0
BUSY_WAITS = 8
MAX_BUSY_WAIT_S = 120.0

_EMAIL = re.compile(r"[^@\s()]+@[^@\s()]+\.[^@\s()]+")
_URL = re.compile(r"https?://[^\s()]+\.[^\s()]+")


class MusicBrainzError(ServiceError):
    """MusicBrainz refused or failed a request; the message says why and what to do."""


@dataclass(frozen=True)
class ReleaseGroup:
    """One album as the search returns it: what ``labels.csv`` records, and the tags that chose it."""

    mbid: str
    title: str
    artist: str
    artist_mbid: str
    year: str
    primary_type: str
    secondary_types: tuple[str, ...]
    tags: tuple[str, ...]  # names of the tags with a positive vote count, lowercase

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReleaseGroup:
        return cls(**{**d, "secondary_types": tuple(d["secondary_types"]), "tags": tuple(d["tags"])})


@dataclass(frozen=True)
class Page:
    groups: list[ReleaseGroup]
    size: int  # entries in the page, read or not: the next page starts ``size`` further on
    total: int  # how many release groups match in all


def check_contact(contact: str | None) -> str:
    """An e-mail address or an http(s) URL for the User-Agent; a :class:`UsageError` otherwise."""
    value = (contact or "").strip()
    if not (_EMAIL.fullmatch(value) or _URL.fullmatch(value)):
        raise UsageError(f"--contact {contact!r}: give an e-mail address or an http(s) URL where MusicBrainz can "
                         "reach you; their rules require one in every request's User-Agent")
    return value


def user_agent(contact: str) -> str:
    """MusicBrainz's form: ``Application/version ( contact )``."""
    return f"scorer/{__version__} ( {contact} )"


def normalise_genre(text: str) -> str:
    """A genre as MusicBrainz tags are written: lowercase, single spaces."""
    return " ".join(text.strip().lower().split())


def api_url() -> str:
    return _slash(os.environ.get("SCORER_MUSICBRAINZ_URL") or DEFAULT_API_URL)


def coverart_url() -> str:
    return _slash(os.environ.get("SCORER_COVERART_URL") or DEFAULT_COVERART_URL)


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def cover_url(base: str, mbid: str, size: int = 250) -> str:
    """The release group's front cover at ``size`` px (250, 500 or 1200); it redirects to the archive's host."""
    return f"{_slash(base)}release-group/{mbid}/front-{size}"


def check_interval(interval: float, *urls: str) -> float:
    """Seconds between requests: at least one on MusicBrainz's own hosts (their rule); a mirror of
    your own may allow less. A :class:`UsageError` otherwise."""
    from urllib.parse import urlsplit

    if not interval >= 0:
        raise UsageError(f"--interval {interval}: give seconds, 0 or more")
    for url in urls:
        host = (urlsplit(url).hostname or "").lower()
        if interval < MIN_INTERVAL_S and any(host == h or host.endswith("." + h) for h in RATE_LIMITED_HOSTS):
            raise UsageError(f"--interval {interval:g}: {host} allows one request per second at most; give 1 or "
                             "more (less is for a mirror of your own, through SCORER_MUSICBRAINZ_URL and "
                             "SCORER_COVERART_URL)")
    return interval


def album_query(tag: str) -> str:
    """Lucene query for albums tagged ``tag``: the tag as a phrase, quotes and backslashes escaped."""
    escaped = tag.replace("\\", "\\\\").replace('"', '\\"')
    return f'tag:"{escaped}" AND primarytype:album'


def _busy_wait(n: int, retry_after: str | None) -> float:
    """The ``n``-th wait for a busy MusicBrainz: its Retry-After, else doubling from :data:`BUSY_WAIT_S`."""
    from scorer.fetch.http import retry_after as seconds

    wait = seconds(retry_after)
    return min(MAX_BUSY_WAIT_S, wait if wait is not None else BUSY_WAIT_S * 2 ** (n - 1))


class MusicBrainzClient:
    """Paced GET requests to the search API: one per ``interval`` seconds, 503 answers waited out."""

    def __init__(self, contact: str, base_url: str | None = None, interval: float = MIN_INTERVAL_S,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        import requests

        self.base = _slash(base_url) if base_url else api_url()
        self.interval = check_interval(interval, self.base)
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": user_agent(check_contact(contact)),
                                     "Accept": "application/json"})
        self.session.trust_env = False  # a proxy from the environment would pool other programs' requests
        self.sleep, self.clock = sleep, clock
        self._last: float | None = None
        self.requests = 0
        self.busy_waits = 0

    def _pace(self) -> None:
        if self._last is not None:
            wait = self._last + self.interval - self.clock()
            if wait > 0:
                self.sleep(wait)
        self._last = self.clock()

    def _attempt(self) -> None:
        self._pace()
        self.requests += 1

    def _refused(self, r: Any, path: str) -> MusicBrainzError:
        if r.status_code == 403:
            return MusicBrainzError(f"MusicBrainz refused the request (HTTP 403) at {self.base}: it blocks "
                                    "clients without a proper User-Agent, or that went over its rate limit; "
                                    "check --contact, wait, and run again")
        detail = _error_text(r)
        return MusicBrainzError(f"MusicBrainz answered HTTP {r.status_code} for /{path}"
                                + (f": {detail}" if detail else "")
                                + ("; it stayed busy, run again later" if r.status_code >= 500 else ""))

    def get(self, path: str, params: dict[str, Any]) -> dict:
        body, waits = JsonGet("MusicBrainz", MusicBrainzError, REQUEST_TIMEOUT, busy=(502, 503, 504),
                              retries=BUSY_WAITS, wait=_busy_wait, sleep=self.sleep, before=self._attempt,
                              refused=self._refused)(self.session, self.base, path, {**params, "fmt": "json"})
        self.busy_waits += waits
        if not isinstance(body, dict):
            raise MusicBrainzError(f"MusicBrainz answered /{path} with an unexpected JSON value")
        return body

    def search_albums(self, tag: str, offset: int, limit: int = PAGE_LIMIT) -> Page:
        """One page of album release groups whose tags match ``tag``, and how many match in all."""
        body = self.get("release-group", {"query": album_query(tag), "offset": offset, "limit": limit})
        items = body.get("release-groups")
        items = items if isinstance(items, list) else []
        total = body.get("count")
        groups = [g for g in (parse_release_group(item) for item in items) if g is not None]
        return Page(groups, len(items), total if isinstance(total, int) else offset + len(items))


def _error_text(r) -> str:
    try:
        body = r.json()
    except ValueError:
        return ""
    return str(body.get("error") or "")[:200] if isinstance(body, dict) else ""


def parse_release_group(item: Any) -> ReleaseGroup | None:
    """A search result as a :class:`ReleaseGroup`; None when it has no id."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        return None
    credits = [c for c in item.get("artist-credit") or [] if isinstance(c, dict)]
    artist = "".join(f"{c.get('name') or (c.get('artist') or {}).get('name') or ''}{c.get('joinphrase') or ''}"
                     for c in credits).strip()
    first = raw if credits and isinstance(raw := credits[0].get("artist"), dict) else {}
    date = item.get("first-release-date") or ""
    year = date[:4] if isinstance(date, str) and date[:4].isdigit() else ""
    tags = tuple(normalise_genre(t["name"]) for t in item.get("tags") or []
                 if isinstance(t, dict) and isinstance(t.get("name"), str)
                 and isinstance(t.get("count"), int) and t["count"] > 0)
    secondary = tuple(s for s in item.get("secondary-types") or [] if isinstance(s, str))
    return ReleaseGroup(item["id"], str(item.get("title") or ""), artist, str(first.get("id") or ""), year,
                        str(item.get("primary-type") or ""), secondary, tags)
