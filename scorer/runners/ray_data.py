"""The Ray Data driver: the same stages as the local engine, spread over a cluster.

Ray reads the catalog (in parallel, by file blocks), an actor pool runs :class:`ScoreStage` —
which loads the model and opens a cover fetcher once per worker, then calls the very
:meth:`scorer.scoring.Scorer.score` the local engine uses — and Ray writes the Parquet dataset.
Install with ``pip install 'scorer[ray]'``; run with ``scorer catalog … --out DIR --engine ray``
(``RAY_ADDRESS`` picks the cluster; without it a local Ray starts), or submit
``jobs/ray_job.py`` with ``ray job submit``.

Incremental carrying and resume are the local engine's (they need the shard layout); a Ray run
writes a complete dataset every time (``--out`` is replaced).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from scorer.fetch import CoverFetcher, FetchOptions
from scorer.filters import KeepFilter
from scorer.model import Model
from scorer.runners.files import open_model, run_metadata
from scorer.scoring import Scorer, Summary, check_passthrough
from scorer.sinks.dataset import META_DIR, DatasetSink
from scorer.sources.catalog import FORMATS, iter_catalog
from scorer.sources.text import Encoding, file_encoding


class ScoreStage:
    """One per Ray worker: the model and the fetcher live as long as the worker."""

    def __init__(self, model_dir: str | None, head: str, keep: list[str], min_prob: float | None,
                 fetch: FetchOptions, base_dir: str, batch_size: int | None, workers: int, precision: str,
                 tta: str = "none"):
        model = open_model(Path(model_dir) if model_dir else None, head, precision, tta)
        self.fetcher = CoverFetcher(fetch, base_dir=Path(base_dir))
        keep_filter = KeepFilter.parse(",".join(keep), model.genres, min_prob, model.aliases)
        self.scorer = Scorer(model, head, keep_filter, self.fetcher, batch_size=batch_size, workers=workers)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.scorer.score(batch)


def read_dataset(input: Path, encoding: str | Encoding | None = None, shard_rows: int = 10_000):
    """The catalog as a Ray dataset. CSV and JSONL go through the local engine's reader on the driver
    (:func:`~scorer.sources.catalog.iter_catalog`: the same columns and types, and a broken line is a
    ``bad_row`` row, not the end of the run); Parquet is read by Ray's workers."""
    import ray.data

    if FORMATS[Path(input).suffix.lower()] == "parquet":
        return ray.data.read_parquet(str(input))
    _, chunks = iter_catalog(input, shard_rows, encoding)
    return ray.data.from_arrow(list(chunks))


def run_ray(input: Path, out: str, keep: str | None = None, head: str | None = None, min_prob: float | None = None,
            model_dir: Model | str | os.PathLike | None = None, batch_size: int | None = None, workers: int = 4,
            precision: str | None = None, fetch: FetchOptions | None = None, shard_rows: int = 10_000,
            actors: int | None = None, tta: str | None = None, encoding: str | Encoding | None = None,
            **_ignored) -> Summary:
    """Score ``input`` into the dataset ``out`` on Ray. Everything is checked before Ray starts."""
    import ray  # without the 'ray' extra: ModuleNotFoundError, which scorer.faults turns into the pip install
    import ray.data

    model = open_model(model_dir, head, precision, tta)
    keep_filter = KeepFilter.parse(keep, model.genres, min_prob, model.aliases)
    head_name = head or model.default_head
    if FORMATS[Path(input).suffix.lower()] != "parquet":
        encoding = file_encoding(Path(input), encoding)  # once: both readers below take it as found
    schema, _ = iter_catalog(input, 1, encoding)
    check_passthrough(schema.names, model.genres)
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
    actors = actors or max(1, int(ray.available_resources().get("CPU", 1)) // 2)
    ds = read_dataset(Path(input).resolve(), encoding, shard_rows)
    scored = ds.map_batches(
        ScoreStage, batch_format="pyarrow", batch_size=min(shard_rows, 4096), concurrency=actors,
        fn_constructor_kwargs=dict(model_dir=str(model.dir), head=head_name,
                                   keep=list(keep_filter.genres), min_prob=keep_filter.min_prob,
                                   fetch=fetch or FetchOptions(), base_dir=str(Path(input).resolve().parent),
                                   batch_size=batch_size, workers=workers,
                                   precision=model.precision, tta=model.tta))
    scored.write_parquet(out, mode="overwrite")
    summary = Summary()
    written = ray.data.read_parquet(out).select_columns(["status", "genre", "kept"])
    for batch in written.iter_batches(batch_format="pyarrow"):
        summary.add(batch)
    sink = DatasetSink(out)  # the parts carry no scorer metadata: the run's goes beside them
    sink.fs.create_dir(sink.path(META_DIR, "tmp"), recursive=True)
    sink.write_json("summary.json", {**summary.as_dict(), "engine": "ray", "actors": actors,
                                     **run_metadata(model, head_name, keep_filter, input=str(input))})
    return summary
