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
import time
from pathlib import Path

import pyarrow as pa

from scorer.fetch import CoverFetcher, FetchOptions
from scorer.options import Options
from scorer.plan import ScoringPlan
from scorer.scoring import Summary, check_passthrough
from scorer.sinks.dataset import META_DIR, DatasetSink
from scorer.sources.catalog import FORMATS, iter_catalog
from scorer.sources.text import Encoding, file_encoding


class ScoreStage:
    """One per Ray worker: the model and the fetcher live as long as the worker. Built from the driver's
    :class:`ScoringPlan` by value (:func:`stage_arguments`): a plan holds open sessions, a worker opens its own."""

    def __init__(self, model_dir: str | None, head: str, keep: list[str], min_prob: float | None,
                 fetch: FetchOptions, base_dir: str, batch_size: int | None, workers: int, precision: str,
                 tta: str = "none", also: dict[str, str] | None = None, embeddings: bool = False):
        plan = ScoringPlan.build(model=Path(model_dir) if model_dir else None, head=head, keep=keep, min_prob=min_prob,
                                 options=Options(precision=precision, tta=tta, batch_size=batch_size, workers=workers),
                                 also=also or None, embeddings=embeddings)
        self.fetcher = CoverFetcher(fetch, base_dir=Path(base_dir))
        self.scorer = plan.scorer(self.fetcher)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.scorer.score(batch)


def stage_arguments(plan: ScoringPlan, base_dir: Path) -> dict:
    """What a worker's :class:`ScoreStage` is built from: the plan, by value."""
    keep = [*plan.keep.genres, *(f"{c.name}:{g}" for c in plan.also for g in c.keep.genres)]
    min_prob = plan.keep.min_prob if plan.keep.min_prob is not None else next(
        (c.keep.min_prob for c in plan.also if c.keep.min_prob is not None), None)
    return dict(model_dir=str(plan.model.dir), head=plan.head, keep=keep, min_prob=min_prob,
                also={c.name: str(c.model.dir) for c in plan.also}, embeddings=plan.embeddings, fetch=plan.fetch,
                base_dir=str(base_dir), batch_size=plan.batch_size,
                workers=plan.workers, precision=plan.model.precision, tta=plan.model.tta)


def read_dataset(input: Path, encoding: str | Encoding | None = None, shard_rows: int = 10_000):
    """The catalog as a Ray dataset. CSV and JSONL go through the local engine's reader on the driver
    (:func:`~scorer.sources.catalog.iter_catalog`: the same columns and types, and a broken line is a
    ``bad_row`` row, not the end of the run); Parquet is read by Ray's workers."""
    import ray.data

    if FORMATS[Path(input).suffix.lower()] == "parquet":
        return ray.data.read_parquet(str(input))
    _, chunks = iter_catalog(input, shard_rows, encoding)
    return ray.data.from_arrow(list(chunks))


def run_ray(input: Path, out: str, plan: ScoringPlan, shard_rows: int = 10_000, actors: int | None = None,
            encoding: str | Encoding | None = None) -> Summary:
    """Score ``input`` into the dataset ``out`` on Ray. Everything is checked before Ray starts."""
    started = time.monotonic()
    import ray  # without the 'ray' extra: ModuleNotFoundError, which scorer.cli.faults turns into the pip install
    import ray.data

    if FORMATS[Path(input).suffix.lower()] != "parquet":
        encoding = file_encoding(Path(input), encoding)  # once: both readers below take it as found
    schema, _ = iter_catalog(input, 1, encoding)
    check_passthrough(schema.names, plan.columns())
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
    actors = actors or max(1, int(ray.available_resources().get("CPU", 1)) // 2)
    ds = read_dataset(Path(input).resolve(), encoding, shard_rows)
    scored = ds.map_batches(
        ScoreStage, batch_format="pyarrow", batch_size=min(shard_rows, 4096), concurrency=actors,
        fn_constructor_kwargs=stage_arguments(plan, Path(input).resolve().parent))
    scored.write_parquet(out, mode="overwrite")
    summary = Summary()
    written = ray.data.read_parquet(out).select_columns(["status", "genre", "kept"])
    for batch in written.iter_batches(batch_format="pyarrow"):
        summary.add(batch)
    summary.seconds = time.monotonic() - started  # Ray's start-up included, as the local engine's run
    sink = DatasetSink(out)  # the parts carry no scorer metadata: the run's goes beside them
    sink.fs.create_dir(sink.path(META_DIR, "tmp"), recursive=True)
    sink.write_json("summary.json", {**summary.as_dict(), "engine": "ray", "actors": actors,
                                     **plan.metadata(input=str(input))})
    return summary
