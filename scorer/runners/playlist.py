"""``scorer playlist``: a Spotify or Deezer playlist's tracks → one scored row per track, each album cover scored
once. Each service is a module of :mod:`scorer.services` that parses its links and yields
:class:`~scorer.services.tracks.Track` rows (``read_playlist``); adding a service is one module and one entry
in :func:`resolve`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from scorer.errors import UsageError
from scorer.plan import ScoringPlan, check_out
from scorer.progress import progress
from scorer.scoring import Summary
from scorer.services import deezer, spotify
from scorer.services.tracks import TRACK_COLUMNS, Track
from scorer.sinks import ParquetSink


@dataclass
class PlaylistResult:
    playlist: dict
    table: pa.Table  # one row per playlist entry, in playlist order
    summary: Summary
    distinct_covers: int
    saved: dict | None = None  # the playlist created with --save-playlist


def tracks_table(tracks: list[Track], service: str) -> pa.Table:
    cols = {c: [getattr(t, c) for t in tracks] for c in TRACK_COLUMNS}
    table = pa.table({c: pa.array(v, pa.int32() if c == "position" else pa.string()) for c, v in cols.items()})
    return table.append_column("source", pa.array([service] * len(tracks), pa.string()))


def resolve(playlist: str) -> tuple[str, str]:
    """``(service, playlist ID)`` for a link, URI or ID; a :class:`UsageError` naming every accepted form.
    Deezer takes what it claims (its links and URIs); Spotify takes the rest, bare IDs included."""
    if deezer.claims(playlist):
        return deezer.NAME, deezer.parse_playlist_id(playlist)
    try:
        return "spotify", spotify.parse_playlist_id(playlist)
    except UsageError as e:
        if str(e).startswith("not a Spotify playlist"):
            raise UsageError(f"{e.cli_message}; or a Deezer playlist: {deezer.FORMS}") from None
        raise


def check_playlist(playlist: str, out: Path | None = None, user: bool = False,
                   save_as: str | None = None) -> tuple[str, str]:
    """``(service, playlist ID)``, once the playlist's own arguments are checked (before the model loads)."""
    service, playlist_id = resolve(playlist)
    check_out(out)
    if save_as is not None and not save_as.strip():
        raise UsageError("--save-playlist needs a name for the new playlist")
    if service != "spotify" and (user or save_as is not None):
        raise UsageError(f"--user and --save-playlist are for Spotify playlists; {service} playlists are read "
                         "without signing in")
    return service, playlist_id


def run_playlist(playlist: str, plan: ScoringPlan, out: Path | None = None, user: bool = False,
                 save_as: str | None = None, token_cache: Path | None = None,
                 show_progress: bool | None = None) -> PlaylistResult:
    """Score every track's album cover. Arguments are checked before the service is asked anything.

    Raises :class:`UsageError` for bad arguments, and ``SpotifyAccessError`` or ``DeezerAccessError`` (both
    :class:`~scorer.errors.ServiceError`) when the service refuses."""
    service, playlist_id = check_playlist(playlist, out, user, save_as)
    if service == "deezer":
        sp = None
        info, tracks = deezer.read_playlist(deezer.DeezerClient(), playlist_id)
    else:
        sp = spotify.make_client(user=user or save_as is not None, cache_path=token_cache)
        info, tracks = spotify.read_playlist(sp, playlist_id)
    info = {**info, "service": service}
    covers = len({t.cover_url for t in tracks if t.error is None})
    with plan.fetcher() as fetcher, progress("scoring covers", total=len(tracks), enabled=show_progress) as advance:
        scorer = plan.scorer(fetcher)
        table = scorer.score(tracks_table(tracks, service), preset=[t.error for t in tracks], on_progress=advance)
    if out is not None:
        metadata = plan.metadata(source=f"{service}-playlist", playlist=info, distinct_covers=covers)
        with ParquetSink(Path(out), metadata) as sink:
            sink.write(table)
    saved = None
    if save_as is not None:
        kept_ids = [r["track_id"] for r in table.select(["track_id", "kept"]).to_pylist()
                    if r["kept"] and r["track_id"]]
        description = (f"Tracks of “{info.get('name')}” kept by scorer ({plan.head}, "
                       f"keep: {', '.join(plan.keep.genres) or 'all'})")
        saved = spotify.save_playlist(sp, save_as, list(dict.fromkeys(kept_ids)), description)
    return PlaylistResult(info, table, scorer.summary, covers, saved)
