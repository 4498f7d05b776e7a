"""``scorer catalog`` and ``scorer links``: validate everything first, then stream rows into Parquet."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from scorer.plan import ScoringPlan, check_out
from scorer.progress import progress
from scorer.scoring import Scorer, Summary, check_passthrough
from scorer.sinks import ParquetSink
from scorer.sources import links_table, read_links
from scorer.sources.catalog import iter_catalog
from scorer.sources.text import Encoding

#: Rows read from a catalog at a time in single-file mode.
CHUNK_ROWS = 4096


def score_chunks(chunks: Iterable[pa.Table], out: Path, scorer: Scorer, metadata: dict,
                 show_progress: bool | None = None) -> Summary:
    """Score tables of rows one after another into the Parquet file ``out`` (written atomically)."""
    with ParquetSink(out, metadata) as sink, progress("scoring", total=None, enabled=show_progress) as advance:
        for table in chunks:
            for chunk in scorer.run(table, on_progress=advance):
                sink.write(chunk)
    return scorer.summary


def run_catalog(input: Path, out: Path, plan: ScoringPlan, encoding: str | Encoding | None = None,
                show_progress: bool | None = None) -> Summary:
    """Score a catalog file (CSV, JSONL, Parquet) into ``out``, streaming it in chunks; ``encoding`` is the
    text encoding of a CSV or JSONL file (detected when None)."""
    return run_file(lambda path: iter_catalog(path, CHUNK_ROWS, encoding), input, out, plan,
                    base_dir=Path(input).resolve().parent, show_progress=show_progress)


def run_links(input: Path, out: Path, plan: ScoringPlan, encoding: str | Encoding | None = None,
              show_progress: bool | None = None) -> Summary:
    """Score a Bandcamp-study link file; each row keeps its ``label`` (the genre in the file)."""

    def read(path: Path) -> tuple[pa.Schema, Iterator[pa.Table]]:
        table = links_table(read_links(path, encoding=encoding))
        return table.schema, iter([table])

    return run_file(read, input, out, plan, show_progress=show_progress, source="link-file")


def run_file(read: Callable[[Path], tuple[pa.Schema, Iterator[pa.Table]]], input: Path, out: Path,
             plan: ScoringPlan, base_dir: Path | None = None, show_progress: bool | None = None,
             **metadata: Any) -> Summary:
    """Score what ``read`` yields from ``input`` into ``out``. The output and the input's header are checked
    before the first cover is fetched."""
    check_out(out)
    schema, chunks = read(input)
    check_passthrough(schema.names, plan.columns())
    meta = plan.metadata(input=str(input), **metadata)
    with plan.fetcher(base_dir) as fetcher:
        return score_chunks(chunks, Path(out), plan.scorer(fetcher), meta, show_progress=show_progress)
