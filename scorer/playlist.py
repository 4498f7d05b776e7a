"""``scorer playlist``: a Spotify playlist's tracks → one scored row per track, each album cover scored once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from .fetch import CoverFetcher, FetchOptions
from .filters import KeepFilter, UsageError
from .progress import progress
from .run import check_out, open_model, run_metadata
from .score import Scorer, Summary
from .sinks import ParquetSink
from .sources.spotify import Track, make_client, parse_playlist_id, read_playlist, save_playlist

TRACK_COLUMNS = ("position", "track_id", "title", "artist", "album", "album_id", "cover_url", "added_at")


@dataclass
class PlaylistResult:
    playlist: dict
    table: pa.Table  # one row per playlist entry, in playlist order
    summary: Summary
    distinct_covers: int
    saved: dict | None = None  # the playlist created with --save-playlist


def tracks_table(tracks: list[Track]) -> pa.Table:
    cols = {c: [getattr(t, c) for t in tracks] for c in TRACK_COLUMNS}
    return pa.table({c: pa.array(v, pa.int32() if c == "position" else pa.string()) for c, v in cols.items()})


def run_playlist(playlist: str, out: Path | None = None, keep: str | None = None, head: str | None = None,
                 min_prob: float | None = None, model_dir: Path | None = None, user: bool = False,
                 save_as: str | None = None, token_cache: Path | None = None, batch_size: int | None = None,
                 workers: int = 4, precision: str | None = None, show_progress: bool | None = None,
                 fetch: FetchOptions | None = None, tta: str | None = None) -> PlaylistResult:
    """Score every track's album cover. Arguments are checked before Spotify is asked anything.

    Raises :class:`UsageError` for bad arguments and ``SpotifyAccessError`` when Spotify refuses."""
    playlist_id = parse_playlist_id(playlist)
    check_out(out)
    if save_as is not None and not save_as.strip():
        raise UsageError("--save-playlist needs a name for the new playlist")
    model = open_model(model_dir, head, precision, tta)
    keep_filter = KeepFilter.parse(keep, model.genres, min_prob, model.aliases)
    head_name = head or model.default_head
    sp = make_client(user=user or save_as is not None, cache_path=token_cache)

    info, tracks = read_playlist(sp, playlist_id)
    covers = len({t.cover_url for t in tracks if t.error is None})
    with CoverFetcher(fetch) as fetcher, progress("scoring covers", total=len(tracks),
                                                  enabled=show_progress) as advance:
        scorer = Scorer(model, head_name, keep_filter, fetcher, batch_size=batch_size, workers=workers)
        table = scorer.score(tracks_table(tracks), preset=[t.error for t in tracks], on_progress=advance)
    if out is not None:
        metadata = run_metadata(model, head_name, keep_filter, source="spotify-playlist", playlist=info,
                                distinct_covers=covers)
        with ParquetSink(Path(out), metadata) as sink:
            sink.write(table)
    saved = None
    if save_as is not None:
        kept_ids = [r["track_id"] for r in table.select(["track_id", "kept"]).to_pylist()
                    if r["kept"] and r["track_id"]]
        description = (f"Tracks of “{info.get('name')}” kept by scorer ({head_name}, "
                       f"keep: {', '.join(keep_filter.genres) or 'all'})")
        saved = save_playlist(sp, save_as, list(dict.fromkeys(kept_ids)), description)
    return PlaylistResult(info, table, scorer.summary, covers, saved)
