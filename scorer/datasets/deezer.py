"""``scorer dataset deezer``: a labelled cover set from Deezer's genres, through its public API (no key).

Each ``--genre`` (a name from Deezer's ``/genre`` list, any case or spacing, or its id) is resolved before any
cover work. Its albums come from artists: first the artists Deezer lists for the genre
(``/genre/{id}/artists``), then those of the genre's album chart (``/chart/{id}/albums``); each artist's albums
(``/artist/{id}/albums``) are read page by page. An album counts for the genre when its own ``genre_id`` is
that genre and its ``record_type`` is ``album``; the rest is counted by reason: singles, EPs and compilations
(``not_album``), another genre (``other_genre``), an album whose own genre is this one but that the chart of
another requested genre lists (``two_genres``: its label would be a coin toss), no cover (``no_cover``), and
an artist's albums past ``per_artist`` (``artist_cap``). The charts are read before anything else, so what is
left out does not depend on the order of the work. Genres take turns, so a stopped run is balanced.

Deezer's quota (about 50 requests per 5 seconds per IP address, answered as error 4 inside an HTTP 200 body)
is waited out by :class:`~scorer.services.deezer.DeezerClient`. Covers (``cover_medium``, 250 px) come
through the project's fetcher. Every API answer and every cover's outcome is appended to
``DIR/.deezer.jsonl`` as it comes, so a rerun replays the journal and asks for nothing twice.
``DIR/<genre>/<album id>.jpg`` and ``DIR/labels.csv`` (``path, genre, album_id, artist, artist_id, title,
year, source``) are what ``scorer train DIR --group-by artist_id`` reads.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

from scorer.datasets.common import (
    MAX_FAILURES_IN_A_ROW,
    UNUSABLE,
    WINDOW,
    check_counts,
    check_out,
    one_run,
    remove_stale,
    write_cover,
    write_labels,
)
from scorer.datasets.deezer_genres import (
    DeezerInterrupted,
    DeezerSummary,
    DeezerTally,
    Genre,
    check_genre_args,
    genre_folder,
    resolve_genres,
)
from scorer.datasets.journal import Journal
from scorer.errors import RowError, UsageError
from scorer.fetch import CoverFetcher, FetchOptions
from scorer.progress import progress
from scorer.services import deezer
from scorer.services.deezer import PAGE_LIMIT, DeezerAccessError, DeezerClient, DeezerNoData

JOURNAL = ".deezer.jsonl"
LOCK = ".deezer.lock"
LABEL_COLUMNS = ("path", "genre", "album_id", "artist", "artist_id", "title", "year", "source")
SOURCE = "deezer"
_YEAR = re.compile(r"[0-9]{4}")
__all__ = ["JOURNAL", "LABEL_COLUMNS", "DeezerInterrupted", "DeezerSummary", "DeezerTally", "Genre", "build_deezer",
           "genre_folder"]


class _Answers:
    """Deezer's answers, each asked once: from the journal when an earlier run had it, else asked and journaled."""

    def __init__(self, client: DeezerClient, journal: Journal, limit: int) -> None:
        self.client, self.journal, self.limit = client, journal, limit
        self.known: dict[str, dict] = {}

    def take(self, event: dict) -> None:
        self.known[event["key"]] = event

    def get(self, key: str, ask: Callable[[], dict]) -> dict:
        if key not in self.known:
            event = {"event": "answer", "key": key, **ask()}
            self.journal.append(event)
            self.known[key] = event
        return self.known[key]

    def page(self, key: str, ask: Callable[[], deezer.Page]) -> dict:
        def asked() -> dict:
            p = ask()
            return {"items": p.items, "total": p.total, "more": p.more}
        return self.get(key, asked)

    def artist_albums(self, artist_id: str, index: int) -> dict:
        def ask() -> dict:
            try:
                p = deezer.artist_albums(self.client, artist_id, index, self.limit)
            except DeezerNoData:  # an artist a list still names but Deezer no longer has
                return {"items": [], "total": 0, "more": False, "gone": True}
            return {"items": p.items, "total": p.total, "more": p.more}
        return self.get(f"artist/{artist_id}/albums@{index}", ask)


@dataclass
class _Genre:
    genre: Genre
    tally: DeezerTally
    artists: list[dict] = field(default_factory=list)  # the genre's artists, then its chart's
    walk: Iterator[dict] | None = None
    pending: int = 0


class _Builder:
    def __init__(self, genres: list[Genre], per_genre: int, per_artist: int, out: Path, answers: _Answers) -> None:
        self.genres = {g.id: _Genre(g, DeezerTally(g.id, g.name, per_genre)) for g in genres}
        self.out, self.per_artist, self.answers = out, per_artist, answers
        self.charted: dict[str, set[int]] = {}  # album id → the requested genres whose chart lists it
        self.outcome: dict[str, dict] = {}  # album id → its cover / no_cover / unusable event
        self.labels: dict[str, dict] = {}  # album id → labels.csv row
        self.artists: Counter = Counter()  # (genre id, artist id) → covers in the set or asked for
        self.failures_in_a_row = 0
        self.last_failure = ""

    def replay(self, events: list[dict]) -> None:
        for e in events:
            if e.get("event") == "answer" and isinstance(e.get("key"), str):
                self.answers.take(e)
            elif e.get("event") in ("cover", "no_cover", "unusable") and isinstance(e.get("album_id"), str):
                if e["event"] != "cover" or (self.out / e.get("path", "")).is_file():
                    self.outcome[e["album_id"]] = e

    def survey(self) -> None:
        """Every requested genre's artists and whole chart, before any album is judged."""
        client = self.answers.client
        for g in self.genres.values():
            gid = g.genre.id
            listed = self.answers.get(f"genre/{gid}/artists",
                                      partial(lambda gid: {"items": deezer.genre_artists(client, gid)}, gid))["items"]
            chart: list[dict] = []
            while True:
                index = len(chart)
                page = self.answers.page(f"chart/{gid}/albums@{index}",
                                         partial(deezer.chart_albums, client, gid, index, self.answers.limit))
                chart += page["items"]
                if not page["items"] or not page["more"]:
                    break
            for album in chart:
                self.charted.setdefault(album["id"], set()).add(gid)
            g.artists = [*listed, *({"id": a["artist_id"], "name": a["artist"]} for a in chart)]
            g.walk = self._walk(g)

    def _walk(self, g: _Genre) -> Iterator[dict]:
        """The genre's albums that may stand for it, artist by artist; every other album counted by reason."""
        t, walked, read = g.tally, set(), set()
        for artist in g.artists:
            if artist["id"] in walked:
                continue
            walked.add(artist["id"])
            t.artists += 1
            index = 0
            while self.artists[(g.genre.id, artist["id"])] < self.per_artist:
                page = self.answers.artist_albums(artist["id"], index)
                for album in page["items"]:
                    if album["id"] in read:
                        continue
                    read.add(album["id"])
                    t.seen += 1
                    if (reason := self._screen(g, album)) is not None:
                        setattr(t, reason, getattr(t, reason) + 1)
                    elif self.artists[(g.genre.id, artist["id"])] >= self.per_artist:
                        t.artist_cap += 1
                    else:
                        yield {**album, "artist_id": artist["id"], "artist": artist["name"]}
                if not page["items"] or not page["more"]:
                    break
                index += len(page["items"])
        t.exhausted = True

    def _screen(self, g: _Genre, album: dict) -> str | None:
        """Why ``album`` cannot stand for genre ``g`` (a tally field), or None."""
        if album["record_type"] != "album":
            return "not_album"
        if album["genre_id"] != g.genre.id:
            return "other_genre"
        if self.charted.get(album["id"], set()) - {g.genre.id}:
            return "two_genres"
        if not album["cover"]:
            return "no_cover"
        return None

    def candidates(self) -> Iterator[tuple[_Genre, dict]]:
        """Genres in turn, one album each, until each has its covers (or its artists have no more)."""
        while True:
            gave = False
            for g in self.genres.values():
                album = self._next(g)
                if album is None:
                    continue
                g.pending += 1
                self.artists[(g.genre.id, album["artist_id"])] += 1
                gave = True
                yield g, album
            if not gave:
                return

    def _next(self, g: _Genre) -> dict | None:
        """The genre's next album to ask a cover for; those the journal has decided are settled on the way."""
        assert g.walk is not None
        while g.tally.covers + g.pending < g.tally.wanted:
            album = next(g.walk, None)
            if album is None or album["id"] not in self.outcome:
                return album
            e = self.outcome[album["id"]]
            if e["event"] == "cover":
                g.tally.covers += 1
                self.artists[(g.genre.id, album["artist_id"])] += 1
                self.labels[album["id"]] = _label(e["path"], g.genre, album)
            else:
                setattr(g.tally, e["event"], getattr(g.tally, e["event"]) + 1)
        return None

    def take(self, g: _Genre, album: dict, got: bytes | RowError) -> bool:
        """Record one answer; True when a cover was written."""
        g.pending -= 1
        if isinstance(got, bytes):
            path = write_cover(self.out, g.genre.folder, album["id"], got)
            if path is not None:
                self.failures_in_a_row = 0
                self._decided({"event": "cover", "genre": g.genre.id, "album_id": album["id"], "path": path})
                self.labels[album["id"]] = _label(path, g.genre, album)
                g.tally.covers += 1
                g.tally.new += 1
                return True
            got = RowError("decode_error", "Deezer's file is not an image Pillow opens")
        self.artists[(g.genre.id, album["artist_id"])] -= 1
        if got.code == "http_404" or got.code in UNUSABLE:
            self.failures_in_a_row = 0
            kind = "no_cover" if got.code == "http_404" else "unusable"
            self._decided({"event": kind, "genre": g.genre.id, "album_id": album["id"], "code": got.code})
            setattr(g.tally, kind, getattr(g.tally, kind) + 1)
        else:
            g.tally.failed += 1
            self.failures_in_a_row += 1
            self.last_failure = f"{got.code}: {got.message}"
        return False

    def _decided(self, event: dict) -> None:
        self.answers.journal.append(event)
        self.outcome[event["album_id"]] = event

    def write_labels(self) -> None:
        write_labels(self.out, self.labels.values(), LABEL_COLUMNS)


def _label(path: str, genre: Genre, album: dict) -> dict:
    year = album.get("release_date", "")[:4]
    return {"path": path, "genre": genre.folder, "album_id": album["id"], "artist": album["artist"],
            "artist_id": album["artist_id"], "title": album["title"], "year": year if _YEAR.fullmatch(year) else "",
            "source": SOURCE}


def _journaled_genres(out: Path) -> tuple[list[dict] | None, list[int] | None]:
    """Deezer's genre list and the set's genre ids, as a set started in ``out`` recorded them (None: not there)."""
    events = Journal(out / JOURNAL).read()
    catalogue = next((e["data"] for e in events if e.get("event") == "answer" and e.get("key") == "genre"), None)
    start = events[0] if events and events[0].get("event") == "start" else {}
    ids = [g["id"] for g in start.get("genres") or [] if isinstance(g, dict)] or None
    return catalogue, ids


def build_deezer(genres: Sequence[str | int], per_genre: int, out: Path | str, *, per_artist: int = 5,
                 fetch: FetchOptions | None = None, client: DeezerClient | None = None,
                 page_limit: int = PAGE_LIMIT, show_progress: bool | None = None,
                 log: Callable[[str], None] | None = None) -> DeezerSummary:
    """Build (or go on building) a labelled cover set of ``per_genre`` albums per Deezer genre.

    ``client`` (default: one on ``SCORER_DEEZER_API_URL`` or Deezer's API) asks the API, ``page_limit`` items a
    page. Raises
    :class:`UsageError` for bad arguments before any request (a genre Deezer does not have: after asking its
    genre list, before anything else), and :class:`DeezerInterrupted` (with what was got) when Deezer or its
    image host keeps failing."""
    asked = check_genre_args(genres)
    check_counts(per_genre, per_artist)
    if not 1 <= page_limit <= PAGE_LIMIT:
        raise UsageError(f"page_limit {page_limit}: ask Deezer for 1 to {PAGE_LIMIT} items a page")
    out = Path(out)
    check_out(out, JOURNAL, LOCK)
    client = client or DeezerClient()
    requests_before, waits_before = client.requests, client.quota_waits
    catalogue, started_with = _journaled_genres(out) if (out / JOURNAL).exists() else (None, None)
    fresh = catalogue is None
    if catalogue is None:
        catalogue = deezer.list_genres(client)
    chosen = resolve_genres(asked, catalogue)
    if started_with is not None and set(started_with) != {g.id for g in chosen}:
        was = ", ".join(str(next((c["name"] for c in catalogue if c["id"] == i), i)) for i in started_with)
        raise UsageError(f"{out} holds a set of {was}; give those genres to go on with it, or a new --out folder "
                         "for these")
    fetch = fetch or FetchOptions()
    options = replace(fetch, retries=max(5, fetch.retries))
    out.mkdir(parents=True, exist_ok=True)
    with one_run(out, LOCK):
        started = time.monotonic()
        remove_stale(out)  # left by a killed run; the lock is ours
        journal = Journal(out / JOURNAL)
        builder = _Builder(chosen, per_genre, per_artist, out, _Answers(client, journal, page_limit))
        builder.replay(journal.read())
        journal.open()
        if not (out / JOURNAL).stat().st_size:
            journal.append({"event": "start", "format": 1, "genres": [asdict(g) for g in chosen]})
        if fresh:
            builder.answers.get("genre", lambda: {"data": catalogue})
        summary = DeezerSummary(out, {g.genre.folder: g.tally for g in builder.genres.values()}, per_artist)
        have = Counter(e["genre"] for e in builder.outcome.values() if e["event"] == "cover")
        have_covers = sum(min(n, per_genre) for gid, n in have.items() if gid in builder.genres)
        if log and have_covers:
            log(f"{out}: going on from {have_covers} covers already there")
        try:
            builder.survey()
            _run(builder, options, summary, have_covers, show_progress)
        except DeezerAccessError as e:
            raise DeezerInterrupted(f"{e}; what was got is kept, run the same command again to go on",
                                    summary) from e
        finally:
            builder.write_labels()
            journal.close()
            summary.requests = client.requests - requests_before
            summary.quota_waits = client.quota_waits - waits_before
            summary.seconds = time.monotonic() - started
        return summary


def _run(builder: _Builder, options: FetchOptions, summary: DeezerSummary, have: int,
         show_progress: bool | None) -> None:
    wanted = sum(t.wanted for t in summary.genres.values())
    with CoverFetcher(options) as fetcher, progress("covers", total=wanted, enabled=show_progress) as advance:
        advance(have)
        while True:
            answered = 0
            stream = fetcher.stream(builder.candidates(), lambda c: cast("dict[str, Any]", c[1])["cover"],
                                    window=WINDOW)
            for (g, album), got in stream:
                answered += 1
                summary.covers_asked += 1
                if builder.take(g, album, cast("bytes | RowError", got)):  # an http(s) URL: bytes or the error
                    advance(1)
                if builder.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                    raise DeezerInterrupted(f"Deezer's image host failed {MAX_FAILURES_IN_A_ROW} covers in a row "
                                            f"(last: {builder.last_failure}); what was got is kept, run the same "
                                            "command again later to go on", summary)
            builder.write_labels()
            if answered == 0:
                return
