"""What a labelled-set build records: its summary (per genre, what was kept and why the rest was left out), the
exception that stops it early with that summary, and the journal that lets a rerun go on where it stopped."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scorer.errors import ScorerError

#: the file of the labels, beside the genre folders
LABELS = "labels.csv"


@dataclass
class GenreTally:
    """One genre's part of the set, and why release groups the search found were left out."""

    wanted: int
    covers: int = 0  # in the set now
    new: int = 0  # written by this run
    seen: int = 0  # release groups the search returned
    no_cover: int = 0  # the Cover Art Archive has no front cover (404)
    two_genres: int = 0  # tagged with another requested genre too
    other_tag: int = 0  # matched the search only through a longer tag (``indie rock`` for ``indie``)
    not_studio: int = 0  # a compilation, live album, soundtrack, remix, ...
    artist_cap: int = 0  # the artist already has ``per_artist`` albums in this genre
    unusable: int = 0  # the archive's file is not an image we can read
    failed: int = 0  # failed this run for a passing reason; the next run asks again
    matches: int | None = None  # how many release groups the search says match the tag
    exhausted: bool = False  # the search has nothing more

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class BuildSummary:
    out: Path
    genres: dict[str, GenreTally]
    per_artist: int
    searches: int = 0  # search requests made by this run
    covers_asked: int = 0  # covers asked of the fetcher by this run (the cover cache may answer)
    busy_waits: int = 0  # 503 answers from MusicBrainz waited out
    seconds: float = 0.0

    @property
    def labels(self) -> Path:
        return self.out / LABELS

    @property
    def complete(self) -> bool:
        """Nothing more to get by running again: each genre has its covers, or the search ran dry and no
        cover failed for a passing reason."""
        return all(t.covers >= t.wanted or (t.exhausted and not t.failed) for t in self.genres.values())

    def as_dict(self) -> dict:
        return {"out": str(self.out), "labels": str(self.labels), "per_artist": self.per_artist,
                "genres": {g: t.as_dict() for g, t in self.genres.items()}, "searches": self.searches,
                "covers_asked": self.covers_asked, "busy_waits": self.busy_waits,
                "seconds": round(self.seconds, 1), "complete": self.complete}


class BuildInterrupted(ScorerError):
    """A labelled-set build stopped early (a service kept failing); what it got is kept, and ``summary`` (the
    builder's summary) says what that is. Each builder raises its own kind of it."""

    def __init__(self, message: str, summary: Any):
        super().__init__(message)
        self.summary = summary


@dataclass
class LabelTally:
    """One label's part of a set from playlists, and why the rest of its playlists' entries were left out."""

    wanted: int = 0  # distinct albums with a cover under this label and no other
    covers: int = 0  # in the set now
    new: int = 0  # written by this run
    playlists: int = 0
    tracks: int = 0  # playlist entries
    repeats: int = 0  # tracks of an album already listed under this label
    no_cover: int = 0  # tracks whose album has no cover on the service
    not_album: int = 0  # entries that are no album's track (removed, or not music)
    two_labels: int = 0  # albums under another label too: left out
    unusable: int = 0  # the image host has no such cover, or it is not an image
    failed: int = 0  # failed this run for a passing reason; the next run asks again

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class PlaylistSummary:
    """What a build from playlists got, per label; ``as_dict`` is ``--json``'s."""

    out: Path
    labels: dict[str, LabelTally]
    playlists: list[dict] = field(default_factory=list)  # label, id, name, owner, tracks, albums
    read: int = 0  # playlists read from the service by this run (the journal has the others)
    covers_asked: int = 0  # covers asked of the fetcher by this run (the cover cache may answer)
    seconds: float = 0.0

    @property
    def labels_csv(self) -> Path:
        return self.out / LABELS

    @property
    def complete(self) -> bool:
        """Nothing more to get by running again: every album has its cover or is known to have none."""
        return all(t.covers + t.unusable >= t.wanted for t in self.labels.values())

    def as_dict(self) -> dict:
        return {"out": str(self.out), "labels_csv": str(self.labels_csv), "playlists": self.playlists,
                "labels": {k: t.as_dict() for k, t in self.labels.items()}, "read": self.read,
                "covers_asked": self.covers_asked, "seconds": round(self.seconds, 1), "complete": self.complete}


class PlaylistsInterrupted(BuildInterrupted):
    """A build from playlists stopped early (the image host kept failing); ``summary`` is a
    :class:`PlaylistSummary`."""


class Journal:
    """Append-only JSON lines; a line cut short by a kill is ignored on reading."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: io.TextIOWrapper | None = None

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        events = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # torn by a kill; appends go after the last whole line
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def open(self) -> None:
        if self.path.exists():  # cut a torn last line off, so that appends start on a line of their own
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.path, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
        self._file = open(self.path, "a", encoding="utf-8")

    def append(self, event: dict) -> None:
        assert self._file is not None
        self._file.write(json.dumps(event, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
