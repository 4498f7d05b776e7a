"""``scorer catalog``: validate everything first, then stream rows through the scorer into Parquet."""

from __future__ import annotations

from pathlib import Path

from .fetch import SimpleFetcher
from .filters import KeepFilter, UsageError
from .model import ENSEMBLE, Model
from .progress import progress
from .score import Scorer, Summary, check_passthrough
from .sinks import ParquetSink
from .sources import read_catalog


def open_model(model_dir: Path | None, head: str | None) -> Model:
    model = Model(model_dir)
    if head is not None and head not in model.head_names:
        raise UsageError(f"unknown head {head!r}; this model has: {', '.join(model.head_names)}")
    return model


def run_catalog(input: Path, out: Path, keep: str | None = None, head: str | None = None,
                min_prob: float | None = None, model_dir: Path | None = None, batch_size: int = 8,
                workers: int = 4, show_progress: bool | None = None) -> Summary:
    """Score ``input`` into ``out``. Every argument is checked before the first cover is fetched."""
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise UsageError(f"--out {out}: give a .parquet file name")
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give a .parquet file name")
    model = open_model(model_dir, head)
    keep_filter = KeepFilter.parse(keep, model.genres, min_prob)
    table = read_catalog(input)
    check_passthrough(table.column_names, model.genres)

    head_name = head or model.default_head
    fetcher = SimpleFetcher(base_dir=Path(input).resolve().parent)
    scorer = Scorer(model, head_name, keep_filter, fetcher, batch_size=batch_size, workers=workers)
    metadata = {
        "genres": model.genres,
        "head": head_name,
        "ensemble_members": model.manifest.get("ensemble") if head_name == ENSEMBLE else None,
        "keep": list(keep_filter.genres),
        "min_prob": keep_filter.min_prob,
        "model": model.manifest,
        "input": str(input),
    }
    try:
        with ParquetSink(out, metadata) as sink, progress("scoring", total=table.num_rows,
                                                          enabled=show_progress) as advance:
            for chunk in scorer.run(table, on_progress=advance):
                sink.write(chunk)
    finally:
        fetcher.close()
    return scorer.summary

