"""Scoring rows: fetch → decode → featurize → head → keep filter → sink, one output row per input row."""

from __future__ import annotations

import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from scorer.engine import batched, decoded, stack_images
from scorer.errors import RowError, UsageError
from scorer.fetch import CoverFetcher
from scorer.filters import KeepFilter
from scorer.model import Model
from scorer.sources.rows import ROW_ERROR

OUTPUT_COLUMNS = ("status", "error", "genre", "genre_prob", "familiarity", "kept", "head", "model_version",
                  "scored_at")
#: the output columns that come before the ``p_<genre>`` ones
_BEFORE_GENRES = 5


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0  # rows with status ok
    inferred: int = 0  # distinct covers that went through the model (rows sharing a cover share it)
    failed: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def add(self, out: pa.Table) -> None:
        """Count an output table's rows."""
        status = out.column("status").to_pylist()
        self.rows += len(status)
        self.scored += sum(s == "ok" for s in status)
        self.failed.update(s for s in status if s != "ok")
        self.kept.update(g for g, k in zip(out.column("genre").to_pylist(), out.column("kept").to_pylist()) if k)

    def as_dict(self) -> dict:
        return {"rows": self.rows, "scored": self.scored, "inferred": self.inferred, "failed": dict(self.failed),
                "failure_rate": round(self.failure_rate, 6), "kept": dict(self.kept),
                "kept_total": sum(self.kept.values()), "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.rows_per_second, 2), "peak_rss_mb": peak_rss_mb()}

    @property
    def failure_rate(self) -> float:
        return sum(self.failed.values()) / self.rows if self.rows else 0.0


def peak_rss_mb() -> float | None:
    """This process's peak resident memory so far, in MiB (None where the OS does not say).

    Linux: ``VmHWM``, the high-water mark of this process's own memory. ``ru_maxrss`` is not used
    there because it survives ``exec``: a job started by a large parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def output_columns(genres: list[str]) -> list[str]:
    return [*OUTPUT_COLUMNS[:_BEFORE_GENRES], *(f"p_{g}" for g in genres), *OUTPUT_COLUMNS[_BEFORE_GENRES:]]


def check_passthrough(columns: list[str], genres: list[str]) -> None:
    clash = sorted(set(columns) & set(output_columns(genres)))
    if clash:
        raise UsageError(f"input column(s) {', '.join(clash)} would be overwritten by the scorer's output; "
                         f"rename them (is this already a scored file?)")


@dataclass(frozen=True)
class Verdict:
    """What became of one cover: ``ok`` with probabilities and familiarity, or an error status and message."""

    status: str
    error: str | None = None
    proba: np.ndarray | None = None
    familiarity: float | None = None


@dataclass
class Scorer:
    """Scores tables of rows with a ``cover_url`` column into output tables of the same length.

    Each distinct ``cover_url`` is fetched and scored once per run: rows sharing a cover share its
    verdict, and covers seen earlier in the run (up to ``memo_size`` of them) are not fetched again.
    """

    model: Model
    head_name: str
    keep: KeepFilter
    fetcher: CoverFetcher
    #: covers per featurizer call; ``None``: what the featurizer prefers on its device
    batch_size: int | None = None
    workers: int = 4
    chunk_rows: int = 4096
    memo_size: int = 200_000

    def __post_init__(self) -> None:
        self.head = self.model.head(self.head_name)
        if self.batch_size is None:
            uses_cnn = "cnn" in self.model.kinds_for(self.head)
            self.batch_size = self.model.cnn.preferred_batch if uses_cnn else 16
        self.summary = Summary()
        self._memo: OrderedDict[str, Verdict] = OrderedDict()

    def run(self, table: pa.Table, on_progress: Callable[[int], None] = lambda n: None) -> Iterator[pa.Table]:
        """Yield output tables of ``chunk_rows`` (input order; at least one, so the schema is always there)."""
        for start in range(0, max(table.num_rows, 1), self.chunk_rows):
            yield self.score(table.slice(start, self.chunk_rows), on_progress=on_progress)

    def score(self, table: pa.Table, preset: list[RowError | None] | None = None,
              on_progress: Callable[[int], None] = lambda n: None) -> pa.Table:
        """The output rows for ``table``; rows with a ``preset`` error get it without being fetched."""
        start = time.perf_counter()
        urls = [u or "" for u in table.column("cover_url").to_pylist()]
        preset = preset or [None] * len(urls)
        if ROW_ERROR in table.column_names:  # rows the reader could not parse: bad_row, and the column goes
            broken = table.column(ROW_ERROR).to_pylist()
            preset = [RowError("bad_row", b) if b is not None else p for b, p in zip(broken, preset)]
            table = table.drop_columns([ROW_ERROR])
        verdicts: dict[str, Verdict] = {}
        todo = []
        for url in dict.fromkeys(u for u, p in zip(urls, preset) if p is None):
            known = self._memo.get(url)
            if known is None:
                todo.append(url)
            else:
                verdicts[url] = known
                self._memo.move_to_end(url)
        for url, verdict in self._score_covers(todo, on_progress):
            verdicts[url] = verdict
            self._memo[url] = verdict
            if len(self._memo) > self.memo_size:
                self._memo.popitem(last=False)
        self.summary.inferred += sum(verdicts[u].status == "ok" for u in todo)
        rows = [Verdict(p.code, p.message) if p is not None else verdicts[u] for u, p in zip(urls, preset)]
        out = self.assemble(table, rows)
        self.summary.add(out)
        self.summary.seconds += time.perf_counter() - start
        on_progress(len(urls) - len(todo))
        return out

    def _score_covers(self, urls: list[str], on_progress: Callable[[int], None]) -> Iterator[tuple[str, Verdict]]:
        assert self.batch_size is not None  # set in __post_init__
        stream = decoded(urls, lambda u: u, self.fetcher, self.workers, window=max(64, 4 * self.batch_size))
        for batch in batched(stream, self.batch_size):
            images = stack_images(batch)
            probs, familiarity = (self.model.predict_with_familiarity(images, self.head) if len(images)
                                  else (np.zeros((0, len(self.model.genres))), None))
            ok = iter(range(len(probs)))
            for o in batch:
                if o.error is None:
                    i = next(ok)
                    yield o.item, Verdict("ok", proba=probs[i],
                                          familiarity=None if familiarity is None else float(familiarity[i]))
                else:
                    yield o.item, Verdict(o.error.code, o.error.message)
            on_progress(len(batch))

    def assemble(self, rows: pa.Table, verdicts: list[Verdict]) -> pa.Table:
        """``rows`` with the score columns appended (``kept`` from this scorer's filter)."""
        genres = self.model.genres
        proba = np.full((len(verdicts), len(genres)), np.nan, dtype=np.float32)
        familiarity = np.full(len(verdicts), np.nan, dtype=np.float32)
        for i, v in enumerate(verdicts):
            if v.proba is not None:
                proba[i] = v.proba
            if v.familiarity is not None:
                familiarity[i] = v.familiarity
        return append_scores(rows, [v.status for v in verdicts], [v.error for v in verdicts], proba,
                             self.keep, genres, self.head.name, self.model.version, familiarity=familiarity)


def append_scores(rows: pa.Table, status: list[str], errors: list, proba: np.ndarray,
                  keep: KeepFilter, genres: list[str], head: str, version: str,
                  scored_at: pa.Array | None = None, familiarity: np.ndarray | None = None) -> pa.Table:
    """The output schema in one place: passthrough columns, then status … scored_at. ``familiarity`` is
    null where it is NaN or not given (a model without a familiarity scale)."""
    ok = np.array([s == "ok" for s in status], dtype=bool)
    kept = keep.apply(proba, genres)
    top = np.where(ok, np.nan_to_num(proba, nan=-1).argmax(axis=1), -1)
    n = len(status)
    cols = {
        "status": pa.array(status, pa.string()),
        "error": pa.array(errors, pa.string()),
        "genre": pa.array([genres[t] if t >= 0 else None for t in top], pa.string()),
        "genre_prob": pa.array(np.where(ok, proba[np.arange(n), np.maximum(top, 0)], np.nan),
                               pa.float32(), mask=~ok),
    }
    fam = np.full(n, np.nan, dtype=np.float32) if familiarity is None else np.asarray(familiarity, np.float32)
    cols["familiarity"] = pa.array(fam, pa.float32(), mask=~ok | np.isnan(fam))
    for j, g in enumerate(genres):
        cols[f"p_{g}"] = pa.array(proba[:, j], pa.float32(), mask=~ok)
    cols["kept"] = pa.array(kept, pa.bool_())
    cols["head"] = pa.array([head] * n, pa.string())
    cols["model_version"] = pa.array([version] * n, pa.string())
    cols["scored_at"] = scored_at if scored_at is not None else pa.array(
        [datetime.now(timezone.utc)] * n, pa.timestamp("us", tz="UTC"))
    out = rows
    for name, col in cols.items():
        out = out.append_column(name, col)
    return out
