"""The nightly batch: a catalog streamed shard by shard into a Parquet dataset, incrementally and resumably.

Shard ``i`` is rows ``i*N … (i+1)*N-1`` of the catalog and becomes ``part-0000i.parquet``. For each
shard the previous part (if any) is consulted:

- same input rows (fingerprint), model version, head and filter → the part is kept as it is;
  this is how a killed run resumes: finished shards are skipped, the rest is done;
- otherwise rows whose ``cover_url`` was scored ``ok`` by the same model version and head are
  *carried* (scores copied, ``kept`` recomputed with today's filter; nothing fetched), and only
  the other rows are fetched and scored (rows sharing a cover are scored once).

Memory holds one shard (plus the bounded decode/fetch windows), whatever the catalog's length.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from scorer.options import check_number
from scorer.plan import ScoringPlan
from scorer.progress import progress
from scorer.scoring import EMBEDDING, Scorer, Summary, append_scores, check_passthrough, peak_rss_mb
from scorer.sinks.dataset import DatasetSink, fingerprint
from scorer.sources.catalog import iter_catalog
from scorer.sources.rows import ROW_ERROR
from scorer.sources.text import Encoding


@dataclass
class RunReport:
    summary: Summary = field(default_factory=Summary)  # every row of the output, carried or not
    shards: int = 0
    shards_skipped: int = 0  # unchanged since the last run (or finished before a kill)
    rows_rescored: int = 0  # fetched and scored in this run
    rows_carried: int = 0  # scores copied from the previous output
    parts_dropped: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {**self.summary.as_dict(), "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.summary.rows / self.seconds, 2) if self.seconds else 0.0,
                "shards": self.shards, "shards_skipped": self.shards_skipped, "rows_rescored": self.rows_rescored,
                "rows_carried": self.rows_carried, "parts_dropped": self.parts_dropped, "peak_rss_mb": peak_rss_mb()}


def run_dataset(input: Path, out: str, plan: ScoringPlan, shard_rows: int = 10_000, rescore: bool = False,
                encoding: str | Encoding | None = None, show_progress: bool | None = None) -> RunReport:
    """Score ``input`` into the dataset folder/URI ``out``. The catalog's header and the output location are
    checked before anything is fetched."""
    check_number("--shard-rows", shard_rows, 1)
    schema, chunks = iter_catalog(input, shard_rows, encoding)
    check_passthrough(schema.names, plan.columns())
    sink = DatasetSink(out)
    settings = plan.settings()
    metadata = plan.metadata(input=str(input), shard_rows=shard_rows)
    report = RunReport()
    start = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat()
    with sink.lock():
        sink.prepare()
        shards: dict[str, dict] = {}
        manifest = {"input": str(input), "started_at": started_at, "finished_at": None, "settings": settings,
                    "shard_rows": shard_rows, "shards": shards}
        with plan.fetcher(Path(input).resolve().parent) as fetcher, \
                progress("scoring", total=None, enabled=show_progress) as advance:
            scorer = plan.scorer(fetcher)
            for i, chunk in enumerate(chunks):
                fp = fingerprint(chunk)
                shard = {"index": i, "rows": chunk.num_rows, "fingerprint": fp, **settings}
                previous = None if rescore else sink.part_metadata(i)
                if previous and previous.get("shard", {}) == shard:
                    report.shards_skipped += 1
                    report.summary.add(sink.read_columns(i, ["status", "genre", "kept"]))
                    entry = {"rows": chunk.num_rows, "skipped": True}
                else:
                    same = previous is not None and all(previous.get("shard", {}).get(k) == settings.get(k)
                                                        for k in ("also", "embeddings"))
                    prev = sink.read_part(i) if same and not rescore else None  # companions' scores carry too
                    table, carried = score_shard(scorer, chunk, prev)
                    sink.write_part(i, table, {**metadata, "shard": shard})
                    report.summary.add(table)
                    report.rows_carried += carried
                    report.rows_rescored += chunk.num_rows - carried
                    entry = {"rows": chunk.num_rows, "rescored": chunk.num_rows - carried, "carried": carried}
                report.shards += 1
                shards[str(i)] = {**entry, "fingerprint": fp, "file": sink.part_path(i).rsplit("/", 1)[-1]}
                sink.write_json("manifest.json", manifest)
                advance(chunk.num_rows)
        report.parts_dropped = sink.drop_parts_from(report.shards)
        report.summary.inferred = scorer.summary.inferred
        report.seconds = time.perf_counter() - start
        report.summary.seconds = report.seconds
        manifest["finished_at"] = datetime.now(timezone.utc).isoformat()
        sink.write_json("manifest.json", manifest)
        sink.write_json("summary.json", {**report.as_dict(), "input": str(input), "output": sink.uri,
                                         "started_at": started_at, "finished_at": manifest["finished_at"],
                                         **settings})
    return report


def score_shard(scorer: Scorer, chunk: pa.Table, previous: pa.Table | None) -> tuple[pa.Table, int]:
    """The output rows of one shard, and how many of them were carried from ``previous``."""
    urls = chunk.column("cover_url").to_pylist()
    carry: dict[str, int] = {}
    if previous is not None and previous.num_rows:
        p = previous.select(["cover_url", "status", "model_version", "head"]).to_pydict()
        for j, (url, status, version, head) in enumerate(zip(p["cover_url"], p["status"], p["model_version"],
                                                             p["head"])):
            if status == "ok" and version == scorer.model.version and head == scorer.head.name:
                carry.setdefault(url, j)
    carried_rows = [k for k, u in enumerate(urls) if u in carry]
    if previous is None or not carried_rows:
        return scorer.score(chunk), 0
    fresh_rows = [k for k, u in enumerate(urls) if u not in carry]
    fresh = scorer.score(chunk.take(pa.array(fresh_rows, pa.int64())))
    rows = chunk.take(pa.array(carried_rows, pa.int64()))
    if ROW_ERROR in rows.column_names:  # carried rows parsed (they have a cover); the marker is not output
        rows = rows.drop_columns([ROW_ERROR])
    kept = carried(scorer, rows, previous.take(pa.array([carry[urls[k]] for k in carried_rows], pa.int64())))
    combined = pa.concat_tables([fresh, kept.cast(fresh.schema)])
    order = np.empty(len(urls), dtype=np.int64)
    order[np.array(fresh_rows + carried_rows, dtype=np.int64)] = np.arange(len(urls))
    return combined.take(pa.array(order)), len(carried_rows)


def carried(scorer: Scorer, rows: pa.Table, previous: pa.Table) -> pa.Table:
    """``rows`` (today's input) with the score columns of their ``previous`` output rows; ``kept`` anew."""
    genres, n = scorer.model.genres, rows.num_rows
    proba = np.stack([previous.column(f"p_{g}").to_numpy(zero_copy_only=False) for g in genres], axis=1)
    familiarity = (previous.column("familiarity").to_numpy(zero_copy_only=False).astype(np.float32)
                   if "familiarity" in previous.column_names else None)
    also = [(c, np.stack([previous.column(f"{c.name}_p_{g}").to_numpy(zero_copy_only=False) for g in c.model.genres],
                         axis=1).astype(np.float32)) for c in scorer.also]
    embedding = previous.column(EMBEDDING).combine_chunks() if scorer.embeddings else None
    return append_scores(rows, ["ok"] * n, [None] * n, proba.astype(np.float32), scorer.keep, genres,
                         scorer.head.name, scorer.model.version,
                         scored_at=previous.column("scored_at").combine_chunks(), familiarity=familiarity,
                         also=also, embedding=embedding)
