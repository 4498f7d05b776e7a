"""``scorer dataset deezer``: a labelled cover set from Deezer's genres (being built)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from scorer.datasets.journal import BuildSummary
from scorer.fetch import FetchOptions


def build_deezer(genres: Sequence[str | int], per_genre: int, out: Path | str, *, per_artist: int = 5,
                 fetch: FetchOptions | None = None, api_url: str | None = None, show_progress: bool | None = None,
                 log: Callable[[str], None] | None = None) -> BuildSummary:
    raise NotImplementedError("scorer dataset deezer is being built")
