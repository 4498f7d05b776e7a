"""Labelled cover sets from music services: the functions behind ``scorer dataset deezer`` (and the other
``scorer dataset`` builders that read a service's catalogue rather than MusicBrainz tags)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from scorer.options import Options

if TYPE_CHECKING:
    from scorer.datasets.deezer import DeezerSummary
    from scorer.datasets.journal import PlaylistSummary
    from scorer.datasets.playlists import Labels

#: notes (going on from a journal) go to this logger at INFO; the command line prints them
notes = logging.getLogger("scorer")


def dataset_deezer(genres: str | int | Sequence[str | int], out: str | os.PathLike, *, per_genre: int = 500,
                   per_artist: int = 5, timeout: float = 60.0, cache: bool = True,
                   cache_max_size: str | int | None = None, allow_private_hosts: bool = False) -> DeezerSummary:
    """``scorer dataset deezer``: build (or go on building) a labelled cover set in ``out`` of ``per_genre``
    albums for each Deezer genre in ``genres`` (a name such as ``"Alternative"`` or ``"rap/hip hop"``, any case
    or spacing, or Deezer's numeric genre id), at most ``per_artist`` of one artist per genre. Albums come from
    the genre's artists and chart, each counted only when its own genre is that one and it is an album (not a
    single, EP or compilation); 250 px covers. Deezer's quota (about 50 requests per 5 s) is waited out.
    ``SCORER_DEEZER_API_URL`` points it at another API base. Raises ``UsageError`` before any cover work for a
    bad argument or a genre Deezer does not have, and ``scorer.datasets.deezer.DeezerInterrupted`` (with what
    was got) when Deezer or its image host keeps failing."""
    from scorer.datasets.deezer import build_deezer

    fetch = Options(allow_private_hosts=allow_private_hosts, concurrency=8, per_host=8, timeout=timeout, retries=5,
                    cache=cache, cache_max_size=cache_max_size).check().fetch()
    names = [genres] if isinstance(genres, (str, int)) else list(genres)
    return build_deezer(names, per_genre, Path(out), per_artist=per_artist, fetch=fetch, log=notes.info)


def dataset_playlists(labels: Labels, out: str | os.PathLike, *, timeout: float = 60.0, cache: bool = True,
                      cache_max_size: str | int | None = None, allow_private_hosts: bool = False) -> PlaylistSummary:
    """``scorer dataset playlists``: build (or go on building) a labelled cover set in ``out`` from Deezer
    playlists, one row per distinct album, labelled with its playlist's label. ``labels`` maps each label (a short
    name: letters, digits, ``-``, ``_``) to a playlist link or a list of them, or is a list of ``(label,
    playlist)`` pairs or ``"label=playlist"`` strings: ``{"like": [liked, more_liked], "skip": skipped}`` teaches
    a taste. An album under two labels is left out and counted. Spotify playlists are refused (Spotify's
    Developer Policy forbids training models on its content). Raises ``UsageError`` before any request for a bad
    argument, ``scorer.services.deezer.DeezerAccessError`` before any cover is fetched when Deezer refuses a
    playlist (private, missing), and ``scorer.datasets.journal.PlaylistsInterrupted`` (with what was got) when
    Deezer's image host keeps failing."""
    from scorer.datasets.playlists import build_playlists

    fetch = Options(allow_private_hosts=allow_private_hosts, concurrency=8, per_host=8, timeout=timeout, retries=5,
                    cache=cache, cache_max_size=cache_max_size).check().fetch()
    return build_playlists(labels, Path(out), fetch=fetch, log=notes.info)
