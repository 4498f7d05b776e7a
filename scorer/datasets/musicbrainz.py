"""``scorer dataset musicbrainz``: a labelled cover set from MusicBrainz genre tags and the Cover Art Archive.

For each genre, MusicBrainz's search lists album release groups tagged with it; a release group
tagged with two of the requested genres is left out (its label would be a coin toss), as are
compilations, live albums and other secondary types, and an artist's albums past ``per_artist``.
Covers come through the project's fetcher (size limits, address checks, cache, retries), paced to
one request per second on MusicBrainz's hosts. Genres take turns, so a stopped run is balanced.

Everything is resumable: every search page and every cover's outcome is appended to
``DIR/.musicbrainz.jsonl`` as it happens, covers are written atomically, and a rerun replays the
journal, so it asks for nothing it already has (a cover, or a 404) and goes on where it stopped.
``DIR/<genre>/<mbid>.jpg`` and ``DIR/labels.csv`` (``path, genre, mbid, artist, artist_mbid,
title, year``) are what ``scorer train DIR --group-by artist_mbid`` reads.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

from scorer.datasets.common import (
    _EXT,  # noqa: F401 - scorer.datasets.playlists imports it from here
    MAX_FAILURES_IN_A_ROW,
    MAX_PER_GENRE,
    UNUSABLE,
    WINDOW,
    check_counts,
    check_out,
    folder_name,
    one_run,
    remove_stale,
    write_cover,
    write_labels,
)
from scorer.datasets.journal import BuildInterrupted, BuildSummary, GenreTally, Journal
from scorer.errors import RowError, UsageError
from scorer.fetch import CoverFetcher, FetchOptions
from scorer.progress import progress
from scorer.services import musicbrainz
from scorer.services.musicbrainz import (
    MIN_INTERVAL_S,
    PAGE_LIMIT,
    MusicBrainzClient,
    MusicBrainzError,
    ReleaseGroup,
    check_contact,
    check_interval,
    cover_url,
    coverart_url,
    normalise_genre,
    user_agent,
)

JOURNAL = ".musicbrainz.jsonl"
LOCK = ".musicbrainz.lock"
LABEL_COLUMNS = ("path", "genre", "mbid", "artist", "artist_mbid", "title", "year")
__all__ = ["LABEL_COLUMNS", "MAX_PER_GENRE", "BuildInterrupted", "BuildSummary", "build_musicbrainz", "check_genres",
           "folder_name"]


def check_genres(genres: Sequence[str]) -> list[str]:
    out: list[str] = []
    for raw in genres:
        for part in str(raw).split(","):
            g = normalise_genre(part)
            if not g:
                continue
            if len(g) > 60 or not any(c.isalnum() for c in g):
                raise UsageError(f"--genre {part.strip()!r}: give a MusicBrainz genre tag such as indie, rock or "
                                 "hip hop")
            if g not in out:
                out.append(g)
    if not out:
        raise UsageError("give at least one --genre (MusicBrainz genre tags such as indie, rock, pop)")
    slugs = Counter(folder_name(g) for g in out)
    if clash := [g for g in out if slugs[folder_name(g)] > 1]:
        raise UsageError(f"--genre {', '.join(clash)}: these share the folder name {folder_name(clash[0])!r}; "
                         "give one of them")
    return out


@dataclass
class _Genre:
    name: str
    tally: GenreTally
    offset: int = 0  # the next search page starts here
    queue: deque = field(default_factory=deque)  # release groups read, not yet decided
    queued: set = field(default_factory=set)
    pending: int = 0  # covers asked for, not yet answered


class _Builder:
    def __init__(self, genres: list[str], per_genre: int, out: Path, per_artist: int,
                 client: MusicBrainzClient, coverart: str, page_limit: int) -> None:
        self.genres = {g: _Genre(g, GenreTally(per_genre)) for g in genres}
        self.out, self.per_artist, self.client = out, per_artist, client
        self.coverart, self.page_limit = coverart, page_limit
        self.journal = Journal(out / JOURNAL)
        self.outcome: dict[str, dict] = {}  # mbid → its cover / no_cover / unusable event
        self.labels: dict[str, dict] = {}  # mbid → labels.csv row
        self.artists: Counter = Counter()  # (genre, artist_mbid) → covers in the set or asked for
        self.failed_now: set[str] = set()
        self.failures_in_a_row = 0
        self.last_failure = ""

    # ------------------------------------------------------------------ the journal, replayed
    def replay(self) -> None:
        events = self.journal.read()
        if events:
            start = events[0]
            if start.get("event") != "start" or set(start.get("genres") or []) != set(self.genres):
                was = ", ".join(start.get("genres") or []) or "unknown genres"
                raise UsageError(f"{self.out} holds a set of {was}; give those genres to go on with it, or a new "
                                 "--out folder for these")
        for e in events:
            if e.get("event") in ("cover", "no_cover", "unusable") and isinstance(e.get("mbid"), str):
                if e["event"] != "cover" or (self.out / e.get("path", "")).is_file():
                    self.outcome[e["mbid"]] = e
        for e in events:
            if e.get("event") == "page" and e.get("genre") in self.genres:
                g = self.genres[e["genre"]]
                self._take_page(g, [ReleaseGroup.from_dict(d) for d in e["groups"]], e["offset"], e["size"],
                                e["total"])
        for g in self.genres.values():  # what the journal already decided: covers, 404s
            undecided: deque = deque()
            for rg in g.queue:
                if rg.mbid in self.outcome:
                    self._settle(g, rg)
                else:
                    undecided.append(rg)
            g.queue = undecided

    def _take_page(self, g: _Genre, groups: list[ReleaseGroup], offset: int, size: int, total: int) -> None:
        g.offset = max(g.offset, offset + size)
        g.tally.matches = total
        g.tally.exhausted = size == 0 or g.offset >= total
        for rg in groups:
            if rg.mbid in g.queued:
                continue  # search results shift between pages
            g.queued.add(rg.mbid)
            g.tally.seen += 1
            if (reason := self._screen(g, rg)) is not None:
                setattr(g.tally, reason, getattr(g.tally, reason) + 1)
            else:
                g.queue.append(rg)

    def _screen(self, g: _Genre, rg: ReleaseGroup) -> str | None:
        """Why ``rg`` cannot stand for genre ``g`` (a tally field), or None."""
        if g.name not in rg.tags:
            return "other_tag"
        if any(other in rg.tags for other in self.genres if other != g.name):
            return "two_genres"
        if rg.primary_type.lower() != "album" or rg.secondary_types:
            return "not_studio"
        return None

    def _settle(self, g: _Genre, rg: ReleaseGroup) -> None:
        e = self.outcome[rg.mbid]
        if e["event"] == "cover":
            g.tally.covers += 1
            self.artists[(g.name, rg.artist_mbid)] += 1
            self.labels[rg.mbid] = _label(e["path"], g.name, rg)
        elif e["event"] == "no_cover":
            g.tally.no_cover += 1
        else:
            g.tally.unusable += 1

    # ------------------------------------------------------------------ choosing what to ask for
    def _next(self, g: _Genre) -> ReleaseGroup | None:
        while True:
            while g.queue:
                rg = g.queue.popleft()
                if rg.mbid in self.failed_now:
                    continue
                if rg.artist_mbid and self.artists[(g.name, rg.artist_mbid)] >= self.per_artist:
                    g.tally.artist_cap += 1
                    continue
                return rg
            if g.tally.exhausted:
                return None
            page = self.client.search_albums(g.name, g.offset, self.page_limit)
            self.journal.append({"event": "page", "genre": g.name, "offset": g.offset, "size": page.size,
                                 "total": page.total, "groups": [rg.as_dict() for rg in page.groups]})
            self._take_page(g, page.groups, g.offset, page.size, page.total)

    def candidates(self) -> Iterator[tuple[_Genre, ReleaseGroup]]:
        """Genres in turn, one release group each, until each has its covers (or the search runs dry)."""
        while True:
            gave = False
            for g in self.genres.values():
                if g.tally.covers + g.pending >= g.tally.wanted:
                    continue
                rg = self._next(g)
                if rg is None:
                    continue
                g.pending += 1
                self.artists[(g.name, rg.artist_mbid)] += 1
                gave = True
                yield g, rg
            if not gave:
                return

    # ------------------------------------------------------------------ what came back
    def take(self, g: _Genre, rg: ReleaseGroup, got: bytes | RowError) -> bool:
        """Record one answer; True when a cover was written."""
        g.pending -= 1
        if isinstance(got, bytes):
            path = self._write(g, rg, got)
            if path is not None:
                self.failures_in_a_row = 0
                event = {"event": "cover", "genre": g.name, "mbid": rg.mbid, "path": path}
                self.journal.append(event)
                self.outcome[rg.mbid] = event
                self.labels[rg.mbid] = _label(path, g.name, rg)
                g.tally.covers += 1
                g.tally.new += 1
                return True
            got = RowError("decode_error", "the archive's file is not an image Pillow opens")
        self.artists[(g.name, rg.artist_mbid)] -= 1
        if got.code == "http_404" or got.code in UNUSABLE:
            self.failures_in_a_row = 0
            kind = "no_cover" if got.code == "http_404" else "unusable"
            event = {"event": kind, "genre": g.name, "mbid": rg.mbid, "code": got.code}
            self.journal.append(event)
            self.outcome[rg.mbid] = event
            setattr(g.tally, kind, getattr(g.tally, kind) + 1)
        else:
            self.failed_now.add(rg.mbid)
            g.tally.failed += 1
            self.failures_in_a_row += 1
            self.last_failure = f"{got.code}: {got.message}"
        return False

    def _write(self, g: _Genre, rg: ReleaseGroup, data: bytes) -> str | None:
        return write_cover(self.out, folder_name(g.name), rg.mbid, data)

    def write_labels(self) -> None:
        write_labels(self.out, self.labels.values(), LABEL_COLUMNS)


def _label(path: str, genre: str, rg: ReleaseGroup) -> dict:
    return {"path": path, "genre": genre, "mbid": rg.mbid, "artist": rg.artist, "artist_mbid": rg.artist_mbid,
            "title": rg.title, "year": rg.year}


def build_musicbrainz(genres: Sequence[str], per_genre: int, out: Path | str, contact: str, *,
                      per_artist: int = 5, fetch: FetchOptions | None = None, api_url: str | None = None,
                      coverart: str | None = None, interval: float = MIN_INTERVAL_S, page_limit: int = PAGE_LIMIT,
                      show_progress: bool | None = None,
                      log: Callable[[str], None] | None = None) -> BuildSummary:
    """Build (or go on building) a labelled cover set of ``per_genre`` albums per MusicBrainz genre tag.

    ``interval`` is the pacing in seconds for both services: one by default, MusicBrainz's rule; less
    only for a mirror of your own. Raises :class:`UsageError` for bad arguments before
    any request, and :class:`BuildInterrupted` (with what was got) when a service keeps failing.
    """
    genres = check_genres(genres)
    contact = check_contact(contact)
    check_counts(per_genre, per_artist)
    if not 1 <= page_limit <= PAGE_LIMIT:
        raise UsageError(f"page_limit {page_limit}: MusicBrainz pages hold 1 to {PAGE_LIMIT}")
    out = Path(out)
    check_out(out, JOURNAL, LOCK)
    coverart = coverart or coverart_url()
    api_url = api_url or musicbrainz.api_url()
    check_interval(interval, api_url, coverart)
    client = MusicBrainzClient(contact, base_url=api_url, interval=interval)
    fetch = fetch or FetchOptions()
    options = replace(fetch, user_agent=user_agent(contact), retries=max(5, fetch.retries),
                      paced=((coverart, interval),) if interval > 0 else ())
    out.mkdir(parents=True, exist_ok=True)
    with one_run(out, LOCK):
        started = time.monotonic()
        remove_stale(out)  # left by a killed run; the lock is ours
        builder = _Builder(genres, per_genre, out, per_artist, client, coverart, page_limit)
        builder.replay()
        builder.journal.open()
        if not (out / JOURNAL).stat().st_size:
            builder.journal.append({"event": "start", "genres": genres, "format": 1})
        summary = BuildSummary(out, {g.name: g.tally for g in builder.genres.values()}, per_artist)
        have = sum(min(t.covers, t.wanted) for t in summary.genres.values())
        if log and have:
            log(f"{out}: going on from {have} covers already there")
        try:
            _run(builder, options, summary, have, show_progress)
        finally:
            builder.write_labels()
            builder.journal.close()
            summary.searches = client.requests
            summary.busy_waits = client.busy_waits
            summary.seconds = time.monotonic() - started
        return summary


def _run(builder: _Builder, options: FetchOptions, summary: BuildSummary, have: int,
         show_progress: bool | None) -> None:
    wanted = sum(t.wanted for t in summary.genres.values())
    with CoverFetcher(options) as fetcher, progress("covers", total=wanted, enabled=show_progress) as advance:
        advance(have)
        while True:
            answered = 0
            try:
                stream = fetcher.stream(builder.candidates(), lambda c: cover_url(builder.coverart, c[1].mbid),
                                        window=WINDOW)
                for (g, rg), got in stream:
                    answered += 1
                    summary.covers_asked += 1
                    if builder.take(g, rg, cast("bytes | RowError", got)):  # an http(s) URL: bytes or the error
                        advance(1)
                    if builder.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                        raise BuildInterrupted(f"the Cover Art Archive failed {MAX_FAILURES_IN_A_ROW} covers in a "
                                               f"row (last: {builder.last_failure}); what was got is kept, run "
                                               "the same command again later to go on", summary)
            except MusicBrainzError as e:
                raise BuildInterrupted(f"{e}; what was got is kept, run the same command again to go on",
                                       summary) from e
            builder.write_labels()
            if answered == 0:
                return
