"""Scoring rows: fetch → decode → featurize → head → keep filter → sink, one output row per input row."""

from __future__ import annotations

import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from scorer.engine import Outcome, batched, decoded, stack_images
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


#: the column of each cover's network features, with ``embeddings=True`` (``--embeddings``)
EMBEDDING = "embedding"


def output_columns(genres: list[str], also: Sequence[Companion] = (), embeddings: bool = False) -> list[str]:
    """The columns a scoring run adds, in order: the main model's, each companion model's, the embedding."""
    return [*OUTPUT_COLUMNS[:_BEFORE_GENRES], *(f"p_{g}" for g in genres), *OUTPUT_COLUMNS[_BEFORE_GENRES:],
            *(c for companion in also for c in companion.columns), *([EMBEDDING] if embeddings else [])]


def check_passthrough(columns: list[str], outputs: list[str]) -> None:
    """The input's columns may not be output columns (``outputs``: :func:`output_columns`)."""
    clash = sorted(set(columns) & set(outputs))
    if clash:
        raise UsageError(f"input column(s) {', '.join(clash)} would be overwritten by the scorer's output; "
                         f"rename them (is this already a scored file?)")


@dataclass(frozen=True)
class Companion:
    """A second model scored beside the main one (``--also``): its labels go to ``<name>_label``,
    ``<name>_prob`` and ``<name>_p_<label>``, and ``keep`` (its share of ``--keep``) joins the main filter."""

    name: str
    model: Model
    head_name: str
    keep: KeepFilter

    @property
    def columns(self) -> list[str]:
        return [f"{self.name}_label", f"{self.name}_prob", *(f"{self.name}_p_{g}" for g in self.model.genres)]


@dataclass(frozen=True)
class Verdict:
    """What became of one cover: ``ok`` with probabilities and familiarity, or an error status and message."""

    status: str
    error: str | None = None
    proba: np.ndarray | None = None
    familiarity: float | None = None
    also: tuple[np.ndarray, ...] = ()  # each companion model's probabilities
    embedding: np.ndarray | None = None  # float16 network features, with ``embeddings``


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
    also: tuple[Companion, ...] = ()
    #: add each cover's network features as the ``embedding`` column
    embeddings: bool = False

    def __post_init__(self) -> None:
        self.head = self.model.head(self.head_name)
        self._also_heads = [c.model.head(c.head_name) for c in self.also]
        if self.embeddings:  # a remembered verdict holds its features: 2.5 kB each for the shipped network
            self.memo_size = min(self.memo_size, 20_000)
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
        """Verdicts in input order. The network runs one batch ahead, on a thread of its own, while this thread
        runs the heads, familiarity and calibration of the batch before: those are one-thread Python and numpy,
        and with the network waiting on them a core would idle for a tenth of the run (``benchmarks/speed.py``)."""
        assert self.batch_size is not None  # set in __post_init__
        stream = decoded(urls, lambda u: u, self.fetcher, self.workers, window=max(64, 4 * self.batch_size))
        with ThreadPoolExecutor(1, thread_name_prefix="scorer-network") as network:
            ahead: tuple[list[Outcome], np.ndarray, Future] | None = None
            for batch in batched(stream, self.batch_size):
                images = stack_images(batch)
                running = (batch, images, network.submit(self._features, images))
                if ahead is not None:
                    yield from self._verdicts(*ahead)
                    on_progress(len(ahead[0]))
                ahead = running
            if ahead is not None:
                yield from self._verdicts(*ahead)
                on_progress(len(ahead[0]))

    def _verdicts(self, batch: list[Outcome], images: np.ndarray, features: Future
                  ) -> Iterator[tuple[str, Verdict]]:
        probs, familiarity, also, embedding = self._infer(images, features.result())
        ok = iter(range(len(probs)))
        for o in batch:
            if o.error is None:
                i = next(ok)
                yield o.item, Verdict("ok", proba=probs[i],
                                      familiarity=None if familiarity is None else float(familiarity[i]),
                                      also=tuple(p[i] for p in also),
                                      embedding=None if embedding is None else embedding[i])
            else:
                yield o.item, Verdict(o.error.code, o.error.message)

    def _features(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The main model's features of an image batch (every kind its head, familiarity and embeddings read)."""
        if not len(images):
            return {}
        return self.model.features(images, self.model.needs(self.head, cnn=self.embeddings))

    def _infer(self, images: np.ndarray, features: dict[str, np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray], np.ndarray | None]:
        """Probabilities, familiarity, each companion's probabilities and the embeddings of an image batch.
        Companions with the main model's network reuse its features: one network run per batch."""
        if not len(images):
            return np.zeros((0, len(self.model.genres))), None, [np.zeros((0, len(c.model.genres))) for c in
                                                                 self.also], None
        probs, familiarity = self.model.predict_from_features(features, self.head)
        also = []
        for companion, head in zip(self.also, self._also_heads):
            same = companion.model.network_key == self.model.network_key
            known = features if same else {k: v for k, v in features.items() if k == "colour"}
            also.append(companion.model.predict_from_features(
                companion.model.features(images, companion.model.needs(head), known), head)[0])
        embedding = features["cnn"].astype(np.float16) if self.embeddings else None
        return probs, familiarity, also, embedding

    def assemble(self, rows: pa.Table, verdicts: list[Verdict]) -> pa.Table:
        """``rows`` with the score columns appended (``kept`` from this scorer's filter)."""
        genres = self.model.genres
        proba = np.full((len(verdicts), len(genres)), np.nan, dtype=np.float32)
        familiarity = np.full(len(verdicts), np.nan, dtype=np.float32)
        also = [np.full((len(verdicts), len(c.model.genres)), np.nan, dtype=np.float32) for c in self.also]
        embedding = None
        for i, v in enumerate(verdicts):
            if v.proba is not None:
                proba[i] = v.proba
                for j, p in enumerate(v.also):
                    also[j][i] = p
            if v.familiarity is not None:
                familiarity[i] = v.familiarity
            if v.embedding is not None:
                if embedding is None:
                    embedding = np.zeros((len(verdicts), len(v.embedding)), dtype=np.float16)
                embedding[i] = v.embedding
        return append_scores(rows, [v.status for v in verdicts], [v.error for v in verdicts], proba,
                             self.keep, genres, self.head.name, self.model.version, familiarity=familiarity,
                             also=list(zip(self.also, also)),
                             embedding=(embedding, self.embedding_size) if self.embeddings else None)

    @property
    def embedding_size(self) -> int:
        """The length of an ``embedding`` (the network's feature size)."""
        return int(self.model.cnn.dim)


def append_scores(rows: pa.Table, status: list[str], errors: list, proba: np.ndarray,
                  keep: KeepFilter, genres: list[str], head: str, version: str,
                  scored_at: pa.Array | None = None, familiarity: np.ndarray | None = None,
                  also: Sequence[tuple[Companion, np.ndarray]] = (),
                  embedding: tuple[np.ndarray | None, int] | pa.Array | None = None) -> pa.Table:
    """The output schema in one place: passthrough columns, then status … scored_at, each companion's columns
    and the embedding (``(features or None, size)``, or the column itself). ``familiarity`` is null where it is
    NaN or not given (a model without a familiarity scale). A row is kept when the main filter and every
    companion's keep it."""
    ok = np.array([s == "ok" for s in status], dtype=bool)
    kept = keep.apply(proba, genres)
    for companion, p in also:
        if companion.keep.genres:
            kept &= companion.keep.apply(p, companion.model.genres)
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
    for companion, p in also:
        cols.update(_label_columns(companion, p, ok))
    if isinstance(embedding, tuple):
        cols[EMBEDDING] = embedding_column(embedding[0], embedding[1], ok)
    elif embedding is not None:
        cols[EMBEDDING] = embedding
    out = rows
    for name, col in cols.items():
        out = out.append_column(name, col)
    return out


def _label_columns(companion: Companion, proba: np.ndarray, ok: np.ndarray) -> dict[str, pa.Array]:
    labels, n = companion.model.genres, len(ok)
    top = np.where(ok, np.nan_to_num(proba, nan=-1).argmax(axis=1), -1)
    cols = {f"{companion.name}_label": pa.array([labels[t] if t >= 0 else None for t in top], pa.string()),
            f"{companion.name}_prob": pa.array(np.where(ok, proba[np.arange(n), np.maximum(top, 0)], np.nan),
                                               pa.float32(), mask=~ok)}
    for j, g in enumerate(labels):
        cols[f"{companion.name}_p_{g}"] = pa.array(proba[:, j], pa.float32(), mask=~ok)
    return cols


def embedding_column(features: np.ndarray | None, size: int, ok: np.ndarray) -> pa.Array:
    """``fixed_size_list<halffloat>[size]``, null where the row is not ``ok``."""
    n = len(ok)
    values = np.zeros((n, size), dtype=np.float16) if features is None else np.asarray(features, np.float16)
    flat = pa.array(values.reshape(-1), pa.float16())
    return pa.FixedSizeListArray.from_arrays(flat, size, mask=pa.array(~ok))
