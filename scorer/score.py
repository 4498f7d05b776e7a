"""Scoring rows: fetch → decode → featurize → head → keep filter → sink, one output row per input row."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from .engine import batched, decoded, stack_images
from .fetch import CoverFetcher
from .filters import KeepFilter, UsageError
from .model import Model

OUTPUT_COLUMNS = ("status", "error", "genre", "genre_prob", "kept", "head", "model_version", "scored_at")


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0
    failed: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def covers_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {"rows": self.rows, "scored": self.scored, "failed": dict(self.failed),
                "kept": dict(self.kept), "kept_total": sum(self.kept.values()),
                "seconds": round(self.seconds, 3), "covers_per_second": round(self.covers_per_second, 2),
                "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float | None:
    """This process's peak resident memory so far, in MiB (None where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def output_columns(genres: list[str]) -> list[str]:
    return [*OUTPUT_COLUMNS[:4], *(f"p_{g}" for g in genres), *OUTPUT_COLUMNS[4:]]


def check_passthrough(columns: list[str], genres: list[str]) -> None:
    clash = sorted(set(columns) & set(output_columns(genres)))
    if clash:
        raise UsageError(f"input column(s) {', '.join(clash)} would be overwritten by the scorer's output; "
                         f"rename them (is this already a scored file?)")


@dataclass
class Scorer:
    """Scores tables of rows with a ``cover_url`` column into output tables of the same length."""

    model: Model
    head_name: str
    keep: KeepFilter
    fetcher: CoverFetcher
    batch_size: int = 8
    workers: int = 4
    chunk_rows: int = 4096

    def __post_init__(self) -> None:
        self.head = self.model.head(self.head_name)

    def run(self, table: pa.Table, on_progress: Callable[[int], None] = lambda n: None) -> Iterator[pa.Table]:
        """Yield output tables chunk by chunk (input order, at least one), updating ``self.summary``."""
        self.summary = Summary(rows=table.num_rows)
        start = time.perf_counter()
        urls = table.column("cover_url").to_pylist()
        genres = self.model.genres
        n = len(urls)
        status: list[str] = []
        errors: list[str | None] = []
        proba = np.full((min(self.chunk_rows, n), len(genres)), np.nan, dtype=np.float32)
        done = 0  # rows of the current chunk already settled
        if n == 0:  # still one (empty) table, so the output has its full schema
            yield self._table(table, status, errors, proba)

        stream = decoded(range(n), lambda i: urls[i] or "", self.fetcher, self.workers,
                         window=max(64, 4 * self.batch_size))
        for batch in batched(stream, self.batch_size):
            images = stack_images(batch)
            probs = iter(self.model.predict(images, self.head)) if len(images) else iter(())
            for outcome in batch:
                if outcome.error is None:
                    proba[done] = next(probs)
                    status.append("ok")
                    errors.append(None)
                else:
                    status.append(outcome.error.code)
                    errors.append(outcome.error.message)
                done += 1
                if done == len(proba):
                    chunk_start = outcome.item + 1 - done
                    yield self._table(table.slice(chunk_start, done), status, errors, proba)
                    status, errors, done = [], [], 0
                    proba = np.full((min(self.chunk_rows, n - outcome.item - 1), len(genres)), np.nan, np.float32)
            on_progress(len(batch))
        self.summary.seconds = time.perf_counter() - start

    def _table(self, rows: pa.Table, status: list[str], errors: list, proba: np.ndarray) -> pa.Table:
        genres = self.model.genres
        ok = np.array([s == "ok" for s in status], dtype=bool)
        kept = self.keep.apply(proba, genres)
        top = np.where(ok, np.nan_to_num(proba, nan=-1).argmax(axis=1), -1)
        self.summary.scored += int(ok.sum())
        self.summary.failed.update(s for s in status if s != "ok")
        self.summary.kept.update(genres[t] for t, k in zip(top, kept) if k)
        now = datetime.now(timezone.utc)
        cols = {
            "status": pa.array(status, pa.string()),
            "error": pa.array(errors, pa.string()),
            "genre": pa.array([genres[t] if t >= 0 else None for t in top], pa.string()),
            "genre_prob": pa.array(np.where(ok, proba[np.arange(len(top)), np.maximum(top, 0)], np.nan),
                                   pa.float32(), mask=~ok),
        }
        for j, g in enumerate(genres):
            cols[f"p_{g}"] = pa.array(proba[:, j], pa.float32(), mask=~ok)
        cols["kept"] = pa.array(kept, pa.bool_())
        cols["head"] = pa.array([self.head.name] * len(status), pa.string())
        cols["model_version"] = pa.array([self.model.version] * len(status), pa.string())
        cols["scored_at"] = pa.array([now] * len(status), pa.timestamp("us", tz="UTC"))
        out = rows
        for name, col in cols.items():
            out = out.append_column(name, col)
        return out
