"""Scoring files and playlists into Parquet: ``scorer catalog``, ``scorer links`` and ``scorer playlist``."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scorer.api.scoring import AlsoArg, ModelArg
from scorer.errors import UsageError
from scorer.options import Options, blas_threads, check_number

if TYPE_CHECKING:
    import pandas as pd

    from scorer.scoring import Summary

#: notes (a detected encoding, training progress) go to this logger at INFO; the command line prints them
notes = logging.getLogger("scorer")


@dataclass
class FileRun:
    """What :func:`score_catalog` and :func:`score_links` did: ``summary`` (counts), ``report`` (the JSON of
    ``--json``), and whether the output is a sharded dataset (``incremental`` with the local engine)."""

    summary: Summary
    report: dict
    dataset: bool
    incremental: bool


def score_catalog(input: str | os.PathLike, out: str | os.PathLike, *, keep: str | Sequence[str] | None = None,
                  min_prob: float | None = None, head: str | None = None, model: ModelArg = None,
                  also: AlsoArg = None, embeddings: bool = False, engine: str = "local", shard_rows: int = 10_000,
                  rescore: bool = False,
                  encoding: str | None = None, progress: bool | None = False,
                  allow_private_hosts: bool = False, concurrency: int = 64, per_host: int = 16,
                  timeout: float = 60.0, retries: int = 3, cache: bool = True,
                  cache_max_size: str | int | None = None, local_files: bool = True, precision: str | None = None,
                  tta: str | None = None, batch_size: int | None = None, workers: int = 4) -> FileRun:
    """``scorer catalog``: score a catalog file into ``out``, a ``.parquet`` file (written atomically) or a
    folder/URI for a sharded, incremental dataset that a rerun brings up to date. The options are those of
    :func:`~scorer.score`; ``engine`` is ``local`` or ``ray`` (a dataset only)."""
    options = Options(allow_private_hosts=allow_private_hosts, concurrency=concurrency, per_host=per_host,
                      timeout=timeout, retries=retries, cache=cache, cache_max_size=cache_max_size,
                      local_files=local_files, precision=precision, tta=tta, batch_size=batch_size, workers=workers)
    return _score_file("catalog", input, out, keep, min_prob, head, model, engine, shard_rows, rescore, encoding,
                       progress, options, also, embeddings)


def score_links(input: str | os.PathLike, out: str | os.PathLike, *, keep: str | Sequence[str] | None = None,
                min_prob: float | None = None, head: str | None = None, model: ModelArg = None,
                also: AlsoArg = None, embeddings: bool = False, encoding: str | None = None,
                progress: bool | None = False,
                allow_private_hosts: bool = False, concurrency: int = 64, per_host: int = 16, timeout: float = 60.0,
                retries: int = 3, cache: bool = True, cache_max_size: str | int | None = None,
                local_files: bool = True, precision: str | None = None, tta: str | None = None,
                batch_size: int | None = None, workers: int = 4) -> FileRun:
    """``scorer links``: score a Bandcamp-study link file (``URL<TAB>genre/id.jpg``) into the Parquet file
    ``out``; each row keeps its ``label``. The options are those of :func:`~scorer.score`."""
    options = Options(allow_private_hosts=allow_private_hosts, concurrency=concurrency, per_host=per_host,
                      timeout=timeout, retries=retries, cache=cache, cache_max_size=cache_max_size,
                      local_files=local_files, precision=precision, tta=tta, batch_size=batch_size, workers=workers)
    return _score_file("links", input, out, keep, min_prob, head, model, "local", 10_000, False, encoding,
                       progress, options, also, embeddings)


def _score_file(kind: str, input, out, keep, min_prob, head, model, engine: str, shard_rows: int, rescore: bool,
                encoding, progress, options: Options, also: AlsoArg = None, embeddings: bool = False) -> FileRun:
    from scorer.plan import ScoringPlan
    from scorer.runners import files as run

    input, out = Path(input), os.fspath(out)
    dataset = not out.lower().endswith((".parquet", ".pq"))
    if dataset and Path(out).suffix.lower() in (".csv", ".tsv", ".json", ".jsonl", ".txt", ".xlsx"):
        raise UsageError(f"--out {out}: give a .parquet file name, or a folder for a sharded dataset")
    if engine not in ("local", "ray"):
        raise UsageError(f"--engine {engine}: use local or ray")
    if engine == "ray" and not dataset:
        raise UsageError("--engine ray writes a dataset: give --out a folder or URI, not a .parquet file")
    check_number("--shard-rows", shard_rows, 1)
    if dataset and kind != "catalog":
        raise UsageError(f"--out {out}: give a .parquet file name")
    plan = ScoringPlan.build(model=model, head=head, keep=keep, min_prob=min_prob, options=options, also=also,
                             embeddings=embeddings)
    found = _text_encoding(input, encoding)
    with blas_threads(1):
        if not dataset:
            runner = run.run_catalog if kind == "catalog" else run.run_links
            summary = runner(input, Path(out), plan, encoding=found, show_progress=progress)
            return FileRun(summary, summary.as_dict(), dataset=False, incremental=False)
        if engine == "ray":
            from scorer.runners.ray_data import run_ray

            summary = run_ray(input, out, plan, shard_rows=shard_rows, encoding=found)
            return FileRun(summary, {**summary.as_dict(), "engine": "ray"}, dataset=True, incremental=False)
        from scorer.runners.dataset import run_dataset

        report = run_dataset(input, out, plan, shard_rows=shard_rows, rescore=rescore, encoding=found,
                             show_progress=progress)
    return FileRun(report.summary, report.as_dict(), dataset=True, incremental=True)


def _text_encoding(input: Path, given: str | None):
    """The encoding to read a text input with, logged when it was detected rather than UTF-8."""
    from scorer.sources.text import file_encoding

    if not input.is_file() or input.suffix.lower() in (".parquet", ".pq"):
        return given  # the reader says what is wrong with it
    found = file_encoding(input, given)
    if found.detected:
        notes.info(f"note: {input} is not UTF-8; reading it as {found.name}, detected "
                   "(give --encoding if that is wrong)")
    return found


def score_playlist(playlist: str, *, keep: str | Sequence[str] | None = None, min_prob: float | None = None,
                   head: str | None = None, model: ModelArg = None, also: AlsoArg = None, embeddings: bool = False,
                   out: str | os.PathLike | None = None,
                   user: bool = False, save_playlist: str | None = None,
                   token_cache: str | os.PathLike | None = None, progress: bool | None = False,
                   allow_private_hosts: bool = False, concurrency: int = 64, per_host: int = 16,
                   timeout: float = 60.0, retries: int = 3, cache: bool = True,
                   cache_max_size: str | int | None = None, local_files: bool = True, precision: str | None = None,
                   tta: str | None = None, batch_size: int | None = None, workers: int = 4) -> pd.DataFrame:
    """``scorer playlist``: score a Spotify or Deezer playlist (link, URI or ID) by its album covers.

    One row per playlist entry, in playlist order (``position``, ``track_id``, ``title``, ``artist``,
    ``album``, ``cover_url``, ``source``, then the columns of :func:`~scorer.score`). ``out`` also writes them
    to Parquet; ``save_playlist`` saves the kept tracks as a new private Spotify playlist of that name.
    ``df.attrs["scorer"]`` holds the playlist, the summary, ``distinct_covers`` and ``saved``. The options are
    those of :func:`~scorer.score`. Raises :class:`~scorer.errors.UsageError` for bad arguments, and a
    :class:`~scorer.errors.ServiceError` (``SpotifyAccessError``, ``DeezerAccessError``) when the service
    refuses.
    """
    import logging

    from scorer.plan import ScoringPlan
    from scorer.runners.playlist import check_playlist, run_playlist

    logging.getLogger("spotipy.client").setLevel(logging.CRITICAL)  # its HTTP errors become our messages
    out_path = Path(out) if out is not None else None
    options = Options(allow_private_hosts=allow_private_hosts, concurrency=concurrency, per_host=per_host,
                      timeout=timeout, retries=retries, cache=cache, cache_max_size=cache_max_size,
                      local_files=local_files, precision=precision, tta=tta, batch_size=batch_size, workers=workers)
    check_playlist(playlist, out_path, user, save_playlist)
    plan = ScoringPlan.build(model=model, head=head, keep=keep, min_prob=min_prob, options=options, also=also,
                             embeddings=embeddings)
    with blas_threads(1):
        result = run_playlist(playlist, plan, out_path, user=user, save_as=save_playlist,
                              token_cache=Path(token_cache) if token_cache is not None else None,
                              show_progress=progress)
    frame = result.table.to_pandas()
    frame.attrs["scorer"] = {"playlist": result.playlist, "distinct_covers": result.distinct_covers,
                             "saved": result.saved, "summary": result.summary.as_dict()}
    return frame
