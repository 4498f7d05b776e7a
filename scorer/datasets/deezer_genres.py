"""The parts of ``scorer dataset deezer`` around the build: Deezer's genres as asked for on the command line
(names in any case or spacing, or ids) and their folders, and the build's summary."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scorer.datasets.common import folder_name
from scorer.datasets.journal import LABELS, BuildInterrupted
from scorer.errors import UsageError


def genre_folder(name: str) -> str:
    """A Deezer genre's folder and label: ``Rap/Hip Hop`` → ``rap-hip-hop``, ``R&B`` → ``r-and-b``."""
    return folder_name(name.replace("&", " and "))


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower().replace("&", "and"))


@dataclass(frozen=True)
class Genre:
    id: int
    name: str  # Deezer's
    folder: str  # the folder and the label


def check_genre_args(genres: Sequence[str | int]) -> list[str]:
    """The ``--genre`` values, split at commas and stripped; a :class:`UsageError` when none is left."""
    out = [part.strip() for raw in genres for part in str(raw).split(",") if part.strip()]
    if not out:
        raise UsageError("give at least one --genre: a Deezer genre name (Pop, Rock, Alternative, Rap/Hip Hop, ...) "
                         "or its id")
    return out


def resolve_genres(asked: Sequence[str], catalogue: list[dict]) -> list[Genre]:
    """Each asked genre (a name in any case or spacing, or an id) as one of Deezer's; a :class:`UsageError` naming
    what Deezer has for one it does not."""
    by_id = {int(g["id"]): str(g["name"]) for g in catalogue}
    by_key = {_key(name): gid for gid, name in by_id.items()}
    out: list[Genre] = []
    for raw in asked:
        gid = int(raw) if raw.isdigit() else by_key.get(_key(raw))
        if gid is None or gid not in by_id:
            names = ", ".join(f"{name} ({i})" for i, name in by_id.items() if i)
            raise UsageError(f"--genre {raw!r}: Deezer has no such genre; it has {names}")
        if gid == 0:
            raise UsageError(f"--genre {raw!r}: Deezer's 'All' is every genre together; give the genres to tell apart")
        genre = Genre(gid, by_id[gid], genre_folder(by_id[gid]))
        if genre not in out:
            out.append(genre)
    return out


@dataclass
class DeezerTally:
    """One genre's part of the set, and why the albums its artists have were left out."""

    id: int
    name: str
    wanted: int
    covers: int = 0  # in the set now
    new: int = 0  # written by this run
    artists: int = 0  # artists whose albums were read
    seen: int = 0  # albums read
    not_album: int = 0  # singles, EPs, compilations (record_type other than album)
    other_genre: int = 0  # the album's own genre is another one
    two_genres: int = 0  # its own genre is this one, but another requested genre's chart lists it
    no_cover: int = 0  # no cover on Deezer (an empty cover_medium, or a 404)
    artist_cap: int = 0  # the artist already has per_artist albums in this genre
    unusable: int = 0  # the cover is not an image we can read
    failed: int = 0  # failed this run for a passing reason; the next run asks again
    exhausted: bool = False  # every artist's albums were read

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class DeezerSummary:
    out: Path
    genres: dict[str, DeezerTally]  # by folder (the label)
    per_artist: int
    requests: int = 0  # Deezer API requests made by this run (the journal answers the rest)
    quota_waits: int = 0  # quota answers waited out
    covers_asked: int = 0  # covers asked of the fetcher by this run (the cover cache may answer)
    seconds: float = 0.0

    @property
    def labels(self) -> Path:
        return self.out / LABELS

    @property
    def complete(self) -> bool:
        return all(t.covers >= t.wanted or (t.exhausted and not t.failed) for t in self.genres.values())

    def as_dict(self) -> dict:
        return {"out": str(self.out), "labels": str(self.labels), "per_artist": self.per_artist,
                "genres": {g: t.as_dict() for g, t in self.genres.items()}, "requests": self.requests,
                "quota_waits": self.quota_waits, "covers_asked": self.covers_asked,
                "seconds": round(self.seconds, 1), "complete": self.complete}


class DeezerInterrupted(BuildInterrupted):
    """The run stopped early (Deezer or its image host kept failing); ``summary`` is a :class:`DeezerSummary`."""
