"""Covers like these: the nearest rows of a scored index (``--embeddings``) to each query cover."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorer.api.scoring import ModelArg
from scorer.options import Options, check_number

if TYPE_CHECKING:
    import pandas as pd

#: what :func:`similar` takes as ``index``: a scored Parquet file, a dataset output folder, or a DataFrame
Index = Any


def similar(queries: Any, *, index: Index, top: int = 5, model: ModelArg = None,
            out: str | os.PathLike | None = None, allow_private_hosts: bool = False, local_files: bool = True,
            timeout: float = 60.0, retries: int = 3, cache: bool = True, cache_max_size: str | int | None = None,
            workers: int = 4, batch_size: int | None = None) -> pd.DataFrame:
    """The ``top`` rows of ``index`` whose covers are most like each query's, by cosine similarity of the
    network's features (``scorer similar``).

    ``index`` is what scoring wrote with ``embeddings=True`` (``--embeddings``): a ``.parquet`` file, a
    sharded dataset output folder, or the DataFrame :func:`~scorer.score` returned. ``queries`` is one query or
    a list of them, each a cover (an http(s) URL or a local path, featurized by the network that made the index:
    ``model``, default the shipped one, at the index's precision and test-time augmentation) or a value of the
    index's ``id`` column (an int, or a text equal to one: a file of that name is then given as ``./NAME`` or
    a ``pathlib.Path``).

    One row per query and rank, queries in order: ``query``, ``status``, ``error``, ``rank`` (1 is the
    nearest), ``similarity`` (cosine, 1 for the same features), then the index row's columns but
    ``embedding`` (and its scoring ``status`` and ``error``: a row with an embedding scored ``ok``). An id
    query finds its own row first. A query whose cover cannot be fetched or decoded, or an id the index lacks,
    is one row with its status (``not_found``, ``http_404``, …) and ``error``, never an exception. ``out``
    also writes the rows to a Parquet file, atomically. ``df.attrs["scorer"]`` records the index, the network
    and the run's summary. The fetch options are those of :func:`~scorer.score`.

    Reading the index is most of the time (about 5 s for 100,000 rows on 2 cores; the search about 35 ms a
    query), so the last index read from files stays in memory (5 kB a row) while its files are unchanged: asking
    again, from a notebook, reads nothing.

    Raises :class:`~scorer.errors.UsageError` for a bad argument (``top`` under 1, an index without an
    ``embedding`` column, an index another network made), before any cover is fetched.
    """
    from scorer.plan import check_out
    from scorer.runners.similar import check_queries, network_model, run_similar
    from scorer.runners.similar_index import open_index

    check_number("--top", top, 1)
    options = Options(allow_private_hosts=allow_private_hosts, timeout=timeout, retries=retries, cache=cache,
                      cache_max_size=cache_max_size, local_files=local_files, workers=workers,
                      batch_size=batch_size).check()
    fetch = options.fetch()
    out_path = Path(out) if out is not None else None
    check_out(out_path)
    given = check_queries(queries)
    source = open_index(index)
    opened = network_model(model, source)
    run = run_similar(given, source, opened, top=top, fetch=fetch, workers=workers, batch_size=batch_size)
    meta = {"index": source.name, "featurizer_id": opened.variants[opened.precision]["id"], "tta": opened.tta,
            "model_version": opened.version, "index_model_version": source.metadata.get("model_version"),
            "top": top, "summary": run.summary}
    if out_path is not None:
        from scorer.sinks import ParquetSink

        with ParquetSink(out_path, {"similar": meta}) as sink:
            sink.write(run.table)
    frame = run.table.to_pandas()
    frame["rank"] = frame["rank"].astype("Int32")  # no rank on a query's error row
    frame.attrs["scorer"] = meta
    return frame
