"""What every playlist service yields: one :class:`Track` per playlist entry."""

from __future__ import annotations

from dataclasses import dataclass

from scorer.errors import RowError

#: the columns a playlist's rows carry, whatever the service
TRACK_COLUMNS = ("position", "track_id", "title", "artist", "album", "album_id", "cover_url", "added_at")


@dataclass
class Track:
    """One playlist entry; ``error`` is set when it cannot be scored (its row then carries that status).

    ``position`` is the 0-based index in the playlist."""

    position: int
    track_id: str | None
    title: str | None
    artist: str | None
    album: str | None
    album_id: str | None
    cover_url: str | None
    added_at: str | None
    error: RowError | None = None
    #: the service's id of the track's (first) artist, where it gives one: what labelled sets group covers by
    artist_id: str | None = None


def smallest_at_least(sized: list[tuple[int, str]], size: int) -> str:
    """Of ``(pixels, url)`` pairs (at least one), the smallest image at least ``size`` pixels, else the largest:
    a cover close to the featurizer's input, not the largest a service has."""
    big = [s for s in sized if s[0] >= size]
    return min(big, key=lambda s: s[0])[1] if big else max(sized, key=lambda s: s[0])[1]


def shown(text: str) -> str:
    """``text`` quoted for a message, cut to 120 characters."""
    return repr(text if len(text) <= 120 else text[:117] + "...")
