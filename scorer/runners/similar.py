"""``scorer similar``: the rows of a scored index whose covers are most like each query's, by the cosine
similarity of the network's features (the ``embedding`` column that ``--embeddings`` writes).

A query is a cover (an http(s) URL or a local path: fetched, decoded and featurized as scoring does it, by the
network that made the index) or the value of a row's ``id`` in the index (its stored vector is the query). A
text that is an ``id`` of the index is taken as that id; a path written another way (``./12345``, an absolute
path) is a cover. The search is exact: unit vectors, one matrix product per block of rows, ``argpartition``
(about 30 ms a query over 100,000 rows on two cores: ``benchmarks/similar.py``).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from scorer.engine import batched, decoded, stack_images
from scorer.errors import UsageError
from scorer.fetch import CoverFetcher, FetchOptions
from scorer.model import TTAS, Model
from scorer.options import blas_threads
from scorer.plan import ModelArg, open_model
from scorer.runners.similar_index import ID, Index, IndexSource

#: index rows per matrix product: a block of 16,384 float32 rows of 1,280 is 80 MB
BLOCK_ROWS = 16_384
#: queries per pass over the index (bounds the similarity block at QUERY_BLOCK x BLOCK_ROWS)
QUERY_BLOCK = 256


@dataclass(frozen=True)
class Query:
    """One query as the output shows it (``text``), and what it is: an index row (an ``id``) or a cover ref."""

    text: str
    row: int | None = None
    ref: str | None = None


@dataclass
class Found:
    """What a query became: its unit vector, or an error status and message."""

    vector: np.ndarray | None = None
    status: str = "ok"
    error: str | None = None


@dataclass
class SimilarRun:
    """The result of :func:`run_similar`: the output ``table`` and what happened (``summary``)."""

    table: pa.Table
    summary: dict = field(default_factory=dict)


def check_queries(queries: Any) -> list[str | os.PathLike | int]:
    """``queries`` as a list: one query (a text, a path, an id number) or an iterable of them."""
    if isinstance(queries, (str, os.PathLike, int)) and not isinstance(queries, bool):
        queries = [queries]
    if isinstance(queries, (bytes, dict)) or not isinstance(queries, Iterable):
        raise UsageError(f"queries: got a {type(queries).__name__}; give cover URLs, paths or ids of the index")
    out = list(queries)
    if not out:
        raise UsageError("queries: none given; give cover URLs, paths or ids of the index")
    for q in out:
        if isinstance(q, bool) or not isinstance(q, (str, os.PathLike, int)) or (isinstance(q, str) and not q.strip()):
            raise UsageError(f"queries: {q!r} is not a query; give cover URLs, paths or ids of the index")
    return out


def network_model(model: ModelArg, source: IndexSource) -> Model:
    """The model whose network made the index: ``model`` (default: the shipped one) at the precision whose
    network id the index records, with the index's test-time augmentation; a :class:`UsageError` when it has
    no such network."""
    opened = open_model(model, None)
    wanted = source.featurizer_id
    if wanted is None:  # an index scorer did not write, or a DataFrame without its attrs: nothing to check
        return opened
    precision = next((p for p, v in opened.variants.items() if v.get("id") == wanted), None)
    if precision is None:
        made_by = source.metadata.get("model_version") or "another model"
        has = ", ".join(str(v.get("id")) for v in opened.variants.values())
        raise UsageError(f"--index {source.name} was made by network {wanted} ({made_by}); --model "
                         f"{model or 'default'} has {has}: give --model the model that scored the index")
    tta = source.tta if source.tta in TTAS else None
    return open_model(opened, None, precision, tta)


def resolve(queries: list[str | os.PathLike | int], index: Index) -> tuple[list[Query], dict[int, Found]]:
    """Each query as an id of the index or a cover, and the outcome of the id queries (by query position)."""
    out: list[Query] = []
    found: dict[int, Found] = {}
    for i, q in enumerate(queries):
        if isinstance(q, os.PathLike):
            out.append(Query(os.fspath(q), ref=os.fspath(q)))
            continue
        text = str(q)
        row = index.ids.get(text)
        if row is None and isinstance(q, str):
            out.append(Query(text, ref=text))
            continue
        out.append(Query(text, row=row))
        found[i] = _id_outcome(index, text, row)
    return out, found


def _id_outcome(index: Index, text: str, row: int | None) -> Found:
    if row is None:
        where = f"no row of the index has {ID} {text}" if index.ids else f"the index has no {ID!r} column"
        return Found(status="not_found", error=where)
    vector = index.vector_of(row)
    if vector is not None:
        return Found(index.unit[vector])
    status = index.status[row] if index.status else None
    reason = index.errors[row] if index.errors else None
    if status in (None, "ok"):
        return Found(status="not_found", error=f"the index row with {ID} {text} has no embedding")
    return Found(status=status, error=f"the index row with {ID} {text} was not scored: {reason}")


def featurize(refs: list[str], model: Model, fetch: FetchOptions, workers: int = 4,
              batch_size: int | None = None) -> dict[str, Found]:
    """Each distinct cover fetched, decoded and featurized as scoring does it, as a unit vector (through
    float16, as the index stores it), or its error."""
    out: dict[str, Found] = {}
    size = batch_size or model.cnn.preferred_batch
    with CoverFetcher(fetch) as fetcher:
        for batch in batched(decoded(list(dict.fromkeys(refs)), lambda r: r, fetcher, workers), size):
            images = stack_images(batch)
            features = iter(model.cnn(images) if len(images) else [])
            for o in batch:
                if o.error is not None:
                    out[o.item] = Found(status=o.error.code, error=o.error.message)
                else:
                    vector = np.asarray(next(features), np.float16).astype(np.float32)
                    norm = float(np.linalg.norm(vector))
                    out[o.item] = Found(vector / norm if norm > 0 else vector)
    return out


def nearest(unit: np.ndarray, queries: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, similarities)``, each ``(len(queries), min(top, len(unit)))``: the ``top`` rows of ``unit``
    most like each query (unit vectors both), most similar first, ties in row order.

    BLAS runs on one thread: the products are bound by memory, not arithmetic, and on a busy machine OpenBLAS's
    second thread made them 3-4x slower (``benchmarks/similar.py``)."""
    with blas_threads(1):
        return _nearest(unit, queries, top)


def _nearest(unit: np.ndarray, queries: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(top, len(unit))
    rows = np.empty((len(queries), k), dtype=np.int64)
    sims = np.empty((len(queries), k), dtype=np.float32)
    for q0 in range(0, len(queries), QUERY_BLOCK):
        block = np.ascontiguousarray(queries[q0:q0 + QUERY_BLOCK], dtype=np.float32)
        best_rows = np.empty((len(block), 0), dtype=np.int64)
        best_sims = np.empty((len(block), 0), dtype=np.float32)
        for start in range(0, len(unit), BLOCK_ROWS):
            s = block @ unit[start:start + BLOCK_ROWS].T
            r = np.broadcast_to(np.arange(start, start + s.shape[1]), s.shape)
            best_rows, best_sims = _top(np.hstack([best_rows, r]), np.hstack([best_sims, s]), k)
        order = np.lexsort((best_rows, -best_sims), axis=1)
        rows[q0:q0 + len(block)] = np.take_along_axis(best_rows, order, axis=1)
        sims[q0:q0 + len(block)] = np.take_along_axis(best_sims, order, axis=1)
    return rows, sims


def _top(rows: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if sims.shape[1] <= k:
        return rows, sims
    pick = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return np.take_along_axis(rows, pick, axis=1), np.take_along_axis(sims, pick, axis=1)


def run_similar(queries: list[str | os.PathLike | int], source: IndexSource, model: Model, *, top: int,
                fetch: FetchOptions, workers: int = 4, batch_size: int | None = None) -> SimilarRun:
    """Read the index, featurize the cover queries and find each query's ``top`` nearest rows."""
    started = time.perf_counter()
    index = source.read_kept()
    read_s = time.perf_counter() - started
    resolved, found = resolve(queries, index)
    refs = [q.ref for q in resolved if q.ref is not None]
    if refs and index.dim != model.cnn.dim:
        raise UsageError(f"--index {source.name}: its embeddings have {index.dim} values, the network of this model "
                         f"gives {model.cnn.dim}: give --model the model that scored the index")
    covers = featurize(refs, model, fetch, workers, batch_size) if refs else {}
    for i, q in enumerate(resolved):
        if q.ref is not None:
            found[i] = covers[q.ref]
    featurized_s = time.perf_counter() - started - read_s
    vectors_of = {i: f.vector for i, f in found.items() if f.vector is not None}
    ok = sorted(vectors_of)
    vectors = np.stack([vectors_of[i] for i in ok]) if ok else np.zeros((0, index.dim), np.float32)
    rows, sims = nearest(index.unit, vectors, top)
    table = _assemble(resolved, found, dict(zip(ok, range(len(ok)))), index, rows, sims)
    failed = Counter(found[i].status for i in range(len(resolved)) if found[i].vector is None)
    summary = {"queries": len(resolved), "found": len(ok), "failed": dict(failed), "top": top,
               "index_rows": index.rows.num_rows, "searched_rows": len(index.positions),
               "seconds": {"index": round(read_s, 3), "queries": round(featurized_s, 3),
                           "search": round(time.perf_counter() - started - read_s - featurized_s, 3)}}
    return SimilarRun(table, summary)


def _assemble(queries: list[Query], found: dict[int, Found], slot: dict[int, int], index: Index,
              rows: np.ndarray, sims: np.ndarray) -> pa.Table:
    """The output: per query its nearest rows (``rank`` 1 first), or one row with its error."""
    text: list[str] = []
    status: list[str] = []
    error: list[str | None] = []
    rank: list[int | None] = []
    similarity: list[float | None] = []
    take: list[int | None] = []
    for i, q in enumerate(queries):
        f = found[i]
        if i not in slot:
            text.append(q.text)
            status.append(f.status)
            error.append(f.error)
            rank.append(None)
            similarity.append(None)
            take.append(None)
            continue
        j = slot[i]
        n = rows.shape[1]
        text += [q.text] * n
        status += ["ok"] * n
        error += [None] * n
        rank += range(1, n + 1)
        similarity += sims[j].tolist()
        take += index.positions[rows[j]].tolist()
    out = index.rows.take(pa.array(take, pa.int64()))
    own = {"query": pa.array(text, pa.string()), "status": pa.array(status, pa.string()),
           "error": pa.array(error, pa.string()), "rank": pa.array(rank, pa.int32()),
           "similarity": pa.array(similarity, pa.float32())}
    for position, (name, column) in enumerate(own.items()):
        out = out.add_column(position, name, column)
    return out
