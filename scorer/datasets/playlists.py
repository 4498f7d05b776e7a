"""``scorer dataset playlists``: a labelled cover set from Deezer playlists, one label per playlist (or several
playlists per label): ``like=…`` and ``skip=…`` teach a taste.

Each playlist's distinct albums are its rows (one per album, not per track); an album under two labels is left
out (its label would be a coin toss) and counted, as are tracks repeating an album, tracks whose album has no
cover and entries that are no album's track. Covers (``cover_medium``, 250 px) come through the project's
fetcher; Deezer's quota is waited out by its client. Spotify playlists are refused: Spotify's Developer Policy
forbids using Spotify content to train a machine-learning model.

Resumable as ``scorer dataset musicbrainz`` is: each playlist read and each cover's outcome is appended to
``DIR/.playlists.jsonl`` as it happens, so a rerun asks Deezer and its image host for nothing it already has.
``DIR/<label>/<album id>.jpg`` and ``DIR/labels.csv`` (``path, genre, album_id, artist, artist_id, title,
year, source, playlist``; ``genre`` holds the label) are what ``scorer train DIR --group-by artist_id`` reads.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Union, cast

from scorer.datasets.common import (
    MAX_FAILURES_IN_A_ROW,
    UNUSABLE,
    check_out,
    one_run,
    remove_stale,
    write_cover,
    write_labels,
)
from scorer.datasets.journal import Journal, LabelTally, PlaylistsInterrupted, PlaylistSummary
from scorer.errors import RowError, UsageError
from scorer.fetch import CoverFetcher, FetchOptions
from scorer.progress import progress
from scorer.services import deezer, spotify
from scorer.services.deezer import DeezerAccessError, DeezerClient
from scorer.services.tracks import Track, shown

JOURNAL = ".playlists.jsonl"
LOCK = ".playlists.lock"
LABEL_COLUMNS = ("path", "genre", "album_id", "artist", "artist_id", "title", "year", "source", "playlist")
SOURCE = "deezer"
WINDOW = 8  # covers asked for ahead of the one being written
#: a cover that can never be used (the CDN has none, or it is not an image): asked for once, then remembered
NEVER = UNUSABLE | {"http_404", "local_file_refused"}
SPOTIFY_TERMS = "https://developer.spotify.com/policy"
_LABEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
#: what ``dataset_playlists`` takes: ``{label: playlist(s)}``, or ``(label, playlist)`` pairs / ``"label=playlist"``
Labels = Union[Mapping[str, Union[str, Sequence[str]]], Iterable[Union[str, tuple[str, str]]]]


@dataclass(frozen=True)
class Source:
    label: str
    playlist: str  # Deezer's playlist id
    given: str  # as the caller wrote it, for messages


def _pairs(labels: Labels) -> Iterator[tuple[str, object]]:
    """``(label, playlist)`` pairs of any form ``labels`` takes; a playlist that is not text is checked later."""
    if isinstance(labels, Mapping):
        for label, given in labels.items():
            several: Sequence[object] = given if isinstance(given, (list, tuple)) else [given]
            for one in several:
                yield str(label), one
        return
    for item in [labels] if isinstance(labels, str) else labels:
        if isinstance(item, str):
            label, sep, given = item.partition("=")
            if not sep or not given.strip():
                raise UsageError(f"--label {shown(item)}: give LABEL=PLAYLIST, e.g. like=https://www.deezer.com/"
                                 "playlist/ID")
            yield label, given
        else:
            label, given = item
            yield str(label), given


def check_labels(labels: Labels) -> list[Source]:
    """Every (label, playlist), checked before any request: labels are short names, playlists Deezer's; a
    Spotify playlist is refused, with why."""
    sources: list[Source] = []
    for label, given in _pairs(labels):
        name = label.strip().lower()
        if not _LABEL.fullmatch(name):
            raise UsageError(f"--label {shown(label)}={given}: a label is a short name of letters, digits, - and _ "
                             "(up to 40), e.g. like or skip")
        if not isinstance(given, str):
            raise UsageError(f"--label {name}: expected a Deezer playlist link as text, got {type(given).__name__}")
        if spotify.claims(given):
            raise UsageError(f"--label {name}={given.strip()}: Spotify playlists cannot be used here: Spotify's "
                             "Developer Policy forbids using Spotify content to train a machine-learning model "
                             f"({SPOTIFY_TERMS}); copy the tracks into a public Deezer playlist and give its link")
        try:
            pid = deezer.parse_playlist_id(given)
        except UsageError as e:
            raise UsageError(f"--label {name}: {e.cli_message}") from None
        if not any(s.label == name and s.playlist == pid for s in sources):
            sources.append(Source(name, pid, given.strip()))
    by_playlist: dict[str, set[str]] = {}
    for s in sources:
        by_playlist.setdefault(s.playlist, set()).add(s.label)
    if twice := next(((p, sorted(ls)) for p, ls in by_playlist.items() if len(ls) > 1), None):
        raise UsageError(f"--label: Deezer playlist {twice[0]} is under {' and '.join(twice[1])}; give each "
                         "playlist one label")
    if len({s.label for s in sources}) < 2:
        raise UsageError("--label: give at least two labels, e.g. --label like=PLAYLIST --label skip=PLAYLIST "
                         "(a model learns to tell labels apart)")
    return sources


@dataclass(frozen=True)
class _Album:
    label: str
    playlist: str
    id: str
    title: str | None
    artist: str | None
    artist_id: str | None
    cover: str


def read_event(label: str, playlist_id: str, info: dict, tracks: list[Track]) -> dict:
    """A playlist as the journal keeps it: its distinct albums (with their track counts) and what was left out."""
    albums: dict[str, dict] = {}
    counts: Counter[str] = Counter()
    for t in tracks:
        if t.album_id is None or (t.error is not None and t.error.code != "no_cover"):
            counts["not_album"] += 1
        elif t.cover_url is None:
            counts["no_cover"] += 1
        elif t.album_id in albums:
            albums[t.album_id]["tracks"] += 1
        else:
            albums[t.album_id] = {"id": t.album_id, "title": t.album, "artist": t.artist, "artist_id": t.artist_id,
                                  "cover": t.cover_url, "tracks": 1}
    return {"event": "playlist", "label": label, "playlist": playlist_id, "name": info.get("name"),
            "owner": info.get("owner"), "tracks": len(tracks), "albums": list(albums.values()), **counts}


class _Builder:
    def __init__(self, sources: list[Source], out: Path, client: DeezerClient) -> None:
        self.sources, self.out, self.client = sources, out, client
        self.journal = Journal(out / JOURNAL)
        self.read: dict[tuple[str, str], dict] = {}  # (label, playlist) → its journal event
        self.outcome: dict[str, dict] = {}  # album id → its cover / unusable event
        self.rows: dict[str, dict] = {}  # album id → labels.csv row
        self.tally = {s.label: LabelTally() for s in sources}
        self.todo: list[_Album] = []
        self.failures_in_a_row = 0
        self.last_failure = ""

    def replay(self) -> None:
        events = self.journal.read()
        wanted = sorted([s.label, s.playlist] for s in self.sources)
        if events and (events[0].get("event") != "start" or sorted(events[0].get("sources") or []) != wanted):
            was = ", ".join(f"{label}={p}" for label, p in events[0].get("sources") or []) or "other playlists"
            raise UsageError(f"--out {self.out} holds a set of {was}; give those labels to go on with it, or a new "
                             "--out folder for these")
        for e in events:
            if e.get("event") == "playlist":
                self.read[(e["label"], e["playlist"])] = e
            elif e.get("event") in ("cover", "unusable") and isinstance(e.get("album_id"), str):
                if e["event"] != "cover" or (self.out / e.get("path", "")).is_file():
                    self.outcome[e["album_id"]] = e

    def read_playlists(self) -> int:
        """Each playlist the journal does not have, from Deezer (how many); a private or missing one stops the run
        here, before any cover is asked for."""
        read = 0
        for s in self.sources:
            if (s.label, s.playlist) in self.read:
                continue
            try:
                info, tracks = deezer.read_playlist(self.client, s.playlist)
            except DeezerAccessError as e:
                raise DeezerAccessError(f"--label {s.label}={s.given}: {e}") from None
            event = read_event(s.label, s.playlist, info, tracks)
            self.journal.append(event)
            self.read[(s.label, s.playlist)] = event
            read += 1
        return read

    def plan(self) -> list[dict]:
        """Tally every playlist, leave out albums under two labels, and queue the covers not yet decided."""
        listed: dict[str, dict[str, _Album]] = {label: {} for label in self.tally}
        shown_playlists = []
        for s in self.sources:
            e, t = self.read[(s.label, s.playlist)], self.tally[s.label]
            shown_playlists.append({"label": s.label, "id": s.playlist, "name": e.get("name"),
                                    "owner": e.get("owner"), "tracks": e["tracks"], "albums": len(e["albums"])})
            t.playlists += 1
            t.tracks += e["tracks"]
            t.no_cover += e.get("no_cover", 0)
            t.not_album += e.get("not_album", 0)
            for a in e["albums"]:
                t.repeats += a["tracks"] - 1
                if a["id"] in listed[s.label]:
                    t.repeats += 1
                    continue
                listed[s.label][a["id"]] = _Album(s.label, s.playlist, a["id"], a.get("title"), a.get("artist"),
                                                  a.get("artist_id"), a["cover"])
        owners = Counter(aid for albums in listed.values() for aid in albums)
        for label, albums in listed.items():
            t = self.tally[label]
            for album in albums.values():
                if owners[album.id] > 1:
                    t.two_labels += 1
                    continue
                t.wanted += 1
                got = self.outcome.get(album.id)
                if got is not None and got["event"] == "cover" and got.get("label") == label:
                    t.covers += 1
                    self.rows[album.id] = _row(got["path"], album)
                elif got is not None and got["event"] == "unusable":
                    t.unusable += 1
                else:
                    self.todo.append(album)
        by_label = [[a for a in self.todo if a.label == label] for label in self.tally]  # labels take turns
        self.todo = [a for turn in itertools.zip_longest(*by_label) for a in turn if a is not None]
        return shown_playlists

    def take(self, album: _Album, got: bytes | RowError) -> bool:
        """Record one answer; True when the album is settled (its cover written, or known to be unusable)."""
        t = self.tally[album.label]
        if isinstance(got, bytes):
            path = write_cover(self.out, album.label, album.id, got)
            if path is not None:
                self.failures_in_a_row = 0
                self.journal.append({"event": "cover", "label": album.label, "album_id": album.id, "path": path})
                self.rows[album.id] = _row(path, album)
                t.covers += 1
                t.new += 1
                return True
            got = RowError("decode_error", "Deezer's file is not an image Pillow opens")
        if got.code in NEVER:
            self.failures_in_a_row = 0
            self.journal.append({"event": "unusable", "label": album.label, "album_id": album.id, "code": got.code})
            t.unusable += 1
            return True
        t.failed += 1
        self.failures_in_a_row += 1
        self.last_failure = f"{got.code}: {got.message}"
        return False

    def write_labels(self) -> None:
        write_labels(self.out, self.rows.values(), LABEL_COLUMNS)


def _row(path: str, album: _Album) -> dict:
    return {"path": path, "genre": album.label, "album_id": album.id, "artist": album.artist or "",
            "artist_id": album.artist_id or "", "title": album.title or "", "year": "", "source": SOURCE,
            "playlist": album.playlist}


def build_playlists(labels: Labels, out: Path | str, *, fetch: FetchOptions | None = None,
                    api_url: str | None = None, show_progress: bool | None = None,
                    log: Callable[[str], None] | None = None) -> PlaylistSummary:
    """Build (or go on building) a labelled cover set from Deezer playlists, one row per distinct album.

    Raises :class:`UsageError` for bad arguments before any request, a
    :class:`~scorer.services.deezer.DeezerAccessError` naming the label when Deezer refuses a playlist (private,
    missing) before any cover is asked for, and :class:`PlaylistsInterrupted` (with what was got) when the image
    host keeps failing."""
    sources = check_labels(labels)
    out = Path(out)
    check_out(out, JOURNAL, LOCK)
    client = DeezerClient(api_url)
    # cover addresses come from Deezer's answers: never read as local paths
    options = replace(fetch or FetchOptions(), local_files=False)
    out.mkdir(parents=True, exist_ok=True)
    with one_run(out, LOCK):
        started = time.monotonic()
        remove_stale(out)
        builder = _Builder(sources, out, client)
        builder.replay()
        builder.journal.open()
        if not (out / JOURNAL).stat().st_size:
            builder.journal.append({"event": "start", "sources": [[s.label, s.playlist] for s in sources],
                                    "format": 1})
        summary = PlaylistSummary(out, builder.tally)
        try:
            summary.read = builder.read_playlists()
            summary.playlists = builder.plan()
            have = sum(t.covers + t.unusable for t in builder.tally.values())
            if log and have:
                log(f"{out}: going on from {have} covers already there")
            _run(builder, options, summary, have, show_progress)
        finally:
            builder.write_labels()
            builder.journal.close()
            summary.seconds = time.monotonic() - started
        return summary


def _run(builder: _Builder, options: FetchOptions, summary: PlaylistSummary, have: int,
         show_progress: bool | None) -> None:
    wanted = sum(t.wanted for t in summary.labels.values())
    with CoverFetcher(options) as fetcher, progress("covers", total=wanted, enabled=show_progress) as advance:
        advance(have)
        for album, got in fetcher.stream(builder.todo, lambda a: a.cover, window=WINDOW):
            summary.covers_asked += 1
            if builder.take(album, cast("bytes | RowError", got)):  # an http(s) URL: bytes or the error
                advance(1)
            if builder.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                raise PlaylistsInterrupted(f"Deezer's image host failed {MAX_FAILURES_IN_A_ROW} covers in a row "
                                           f"(last: {builder.last_failure}); what was got is kept, run the same "
                                           "command again later to go on", summary)
