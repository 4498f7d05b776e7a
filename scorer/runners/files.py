"""``scorer catalog`` and ``scorer links``: validate everything first, then stream rows into Parquet."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from scorer.errors import UsageError
from scorer.fetch import CoverFetcher, FetchOptions
from scorer.filters import KeepFilter
from scorer.model import ENSEMBLE, PRECISIONS, TTAS, Model
from scorer.progress import progress
from scorer.scoring import Scorer, Summary, check_passthrough
from scorer.sinks import ParquetSink
from scorer.sources import links_table, read_links
from scorer.sources.catalog import iter_catalog
from scorer.sources.text import Encoding

#: Rows read from a catalog at a time in single-file mode.
CHUNK_ROWS = 4096


def open_model(model_dir: Model | str | os.PathLike | None, head: str | None, precision: str | None = None,
               tta: str | None = None) -> Model:
    """The model to score with (a loaded :class:`Model` is used as it is unless ``precision`` or ``tta`` ask
    for another variant of it); :class:`UsageError` for anything wrong, checked before any work."""
    if precision is not None and precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
    if tta is not None and tta not in TTAS:
        raise UsageError(f"--tta {tta}: use one of {', '.join(TTAS)}")
    if isinstance(model_dir, Model) and precision in (None, model_dir.precision) and tta in (None, model_dir.tta):
        model = model_dir
    else:
        try:
            model = Model(model_dir.dir if isinstance(model_dir, Model) else model_dir, precision=precision, tta=tta)
        except (ValueError, FileNotFoundError) as e:
            raise UsageError(str(e)) from None
    if head is not None and head not in model.head_names:
        raise UsageError(f"unknown head {head!r}; this model has: {', '.join(model.head_names)}")
    return model


def check_out(out: Path | None) -> None:
    if out is None:
        return
    if Path(out).suffix.lower() not in (".parquet", ".pq"):
        raise UsageError(f"--out {out}: give a .parquet file name")
    if Path(out).is_dir():
        raise UsageError(f"--out {out} is a directory; give a .parquet file name")


def run_metadata(model: Model, head_name: str, keep: KeepFilter, **extra) -> dict:
    """What every output records about how it was made."""
    return {
        "genres": model.genres,
        "head": head_name,
        "ensemble_members": model.manifest.get("ensemble") if head_name == ENSEMBLE else None,
        "keep": list(keep.genres),
        "min_prob": keep.min_prob,
        "model": model.manifest,
        "model_version": model.version,
        "precision": model.precision,
        "tta": model.tta,
        "featurizer_id": model.variants[model.precision]["id"],
        "calibration": model.calibration(head_name).as_dict(),
        **extra,
    }


def score_chunks(chunks: Iterable[pa.Table], out: Path, scorer: Scorer, metadata: dict,
                 show_progress: bool | None = None) -> Summary:
    """Score tables of rows one after another into the Parquet file ``out`` (written atomically)."""
    with ParquetSink(out, metadata) as sink, progress("scoring", total=None, enabled=show_progress) as advance:
        for table in chunks:
            for chunk in scorer.runners.files(table, on_progress=advance):
                sink.write(chunk)
    return scorer.summary


def run_catalog(input: Path, out: Path, encoding: str | Encoding | None = None, **options) -> Summary:
    """Score a catalog file (CSV, JSONL, Parquet) into ``out``, streaming it in chunks; ``encoding`` is the
    text encoding of a CSV or JSONL file (detected when None); ``options`` as for :func:`run_file`."""
    return run_file(lambda path: iter_catalog(path, CHUNK_ROWS, encoding), input, out,
                    base_dir=Path(input).resolve().parent, **options)


def run_links(input: Path, out: Path, encoding: str | Encoding | None = None, **options) -> Summary:
    """Score a Bandcamp-study link file; each row keeps its ``label`` (the genre in the file)."""

    def read(path: Path) -> tuple[pa.Schema, Iterator[pa.Table]]:
        table = links_table(read_links(path, encoding=encoding))
        return table.schema, iter([table])

    return run_file(read, input, out, source="link-file", **options)


def run_file(read: Callable[[Path], tuple[pa.Schema, Iterator[pa.Table]]], input: Path, out: Path,
             keep: str | None = None, head: str | None = None, min_prob: float | None = None,
             model_dir: Model | str | os.PathLike | None = None, batch_size: int | None = None, workers: int = 4,
             precision: str | None = None, show_progress: bool | None = None, fetch: FetchOptions | None = None,
             base_dir: Path | None = None, tta: str | None = None,
             **metadata) -> Summary:
    """Score what ``read`` yields from ``input`` into ``out``. Every argument, and the input's header,
    is checked before the first cover is fetched."""
    check_out(out)
    model = open_model(model_dir, head, precision, tta)
    keep_filter = KeepFilter.parse(keep, model.genres, min_prob, model.aliases)
    schema, chunks = read(input)
    check_passthrough(schema.names, model.genres)
    head_name = head or model.default_head
    meta = run_metadata(model, head_name, keep_filter, input=str(input), **metadata)
    with CoverFetcher(fetch, base_dir=base_dir) as fetcher:
        scorer = Scorer(model, head_name, keep_filter, fetcher, batch_size=batch_size, workers=workers)
        return score_chunks(chunks, Path(out), scorer, meta, show_progress=show_progress)
