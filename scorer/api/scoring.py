"""Scoring covers a caller holds: a DataFrame, a list of covers or a catalog file, to pandas (or Arrow)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from scorer.errors import InputNotFound, UsageError
from scorer.options import Options, blas_threads, check_number

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from scorer.model import Model
    from scorer.plan import ScoringPlan
    from scorer.scoring import Summary

#: what :func:`score` takes: a DataFrame with ``cover_url``, an iterable of covers, or a catalog file's path
Covers = Union["pd.DataFrame", str, os.PathLike, Iterable[Any]]
#: a model: None (the shipped default), a shipped model's name, a model directory, or a loaded :class:`Model`
ModelArg = Union["Model", str, os.PathLike, None]
#: models scored beside the main one (``also=``): a model, ``"NAME=FOLDER"``, a list of these, or ``{name: model}``
AlsoArg = Union["Model", str, os.PathLike, Sequence[Any], Mapping[str, Any], None]
#: the file suffixes read as a catalog when ``covers`` is a single path
CATALOG_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json", ".parquet", ".pq")
#: the column of covers unless ``url_col`` names another
URL_COL = "cover_url"


def load_model(path_or_name: str | os.PathLike | None = None, precision: str | None = None,
               tta: str | None = None) -> Model:
    """Load a trained model: the shipped default (None), a shipped model by name, or a model directory.

    ``precision`` is ``fp32`` or ``int8`` and ``tta`` is ``none`` or ``flip``; each defaults to the
    model's choice. The model has ``.genres``, ``.heads``, ``.default_head`` and ``.info()`` (what
    ``scorer info`` shows). Pass it as ``model=`` to the scoring functions to load it only once.
    """
    from scorer.plan import open_model

    return open_model(path_or_name, None, precision, tta)


def score(covers: Covers, *, keep: str | Sequence[str] | None = None, min_prob: float | None = None,
          head: str | None = None, model: ModelArg = None, also: AlsoArg = None, embeddings: bool = False,
          url_col: str = URL_COL, allow_private_hosts: bool = False, concurrency: int = 64, per_host: int = 16,
          timeout: float = 60.0,
          retries: int = 3, cache: bool = True, cache_max_size: str | int | None = None, local_files: bool = True,
          precision: str | None = None, tta: str | None = None, batch_size: int | None = None, workers: int = 4,
          encoding: str | None = None, progress: bool = False) -> pd.DataFrame:
    """Score covers and return one row per input row, in input order, as a pandas DataFrame.

    ``covers`` is a DataFrame with a ``cover_url`` column (or the column ``url_col`` names; its index and
    other columns pass through), a Series of covers (its index passes through), a list or any iterable of
    covers, or the path of a catalog file (CSV, JSONL or Parquet, read as ``scorer catalog`` reads it). A
    cover is an http(s) URL, a local path (relative to the catalog file's folder, or else to the working
    directory), or an image already in memory: a file's bytes, a PIL image, or a uint8 numpy array in RGB
    order (H×W, H×W×3 or H×W×4).

    The columns added are those of ``scorer catalog``: ``status`` (``ok`` or an error code),
    ``error``, ``genre``, ``genre_prob``, ``familiarity``, one ``p_<genre>`` per genre, ``kept``, ``head``,
    ``model_version`` and ``scored_at``. A cover that cannot be fetched or decoded is a row with its
    status, never an exception. ``keep`` takes genres as ``"rock,pop"`` or ``["rock", "pop"]``;
    the other options are the command line's flags (``allow_private_hosts`` is
    ``--allow-private-hosts``, ``local_files=False`` is ``--no-local-files``; see ``scorer catalog --help``).
    ``df.attrs["scorer"]`` records the model, head, filter and the run's summary.

    ``also`` scores other models beside ``model`` in the same pass (one fetch and decode per cover, one network
    run when they share the network): a model folder or name, ``"NAME=FOLDER"``, a list of these or a
    ``{name: model}`` mapping. Each adds ``<name>_label``, ``<name>_prob`` and ``<name>_p_<label>``; ``keep``
    may name labels of any of them (``"rock,like"``: rock covers the taste model would like; ``NAME:label``
    picks one model's label), and a row is kept when every model given labels keeps it. ``embeddings=True``
    adds ``embedding``: each cover's network features (float16, the model's network) for :func:`scorer.similar`.

    Raises :class:`~scorer.errors.UsageError` for a bad argument, before any cover is fetched.
    """
    import pandas as pd

    chunks = iter_scores(covers, keep=keep, min_prob=min_prob, head=head, model=model, also=also,
                         embeddings=embeddings, url_col=url_col,
                         allow_private_hosts=allow_private_hosts, concurrency=concurrency, per_host=per_host,
                         timeout=timeout, retries=retries, cache=cache, cache_max_size=cache_max_size,
                         local_files=local_files, precision=precision, tta=tta, batch_size=batch_size,
                         workers=workers, encoding=encoding, progress=progress)
    frames = list(chunks)
    out = frames[0] if len(frames) == 1 else pd.concat(frames)
    out.attrs["scorer"] = {**frames[0].attrs["scorer"], "summary": chunks.summary.as_dict()}
    return out


class ScoreChunks(Iterator[Any]):
    """What :func:`iter_scores` returns: an iterator over the scored chunks, and the run's ``summary``
    (rows, scored, failed by status, kept by genre) so far."""

    def __init__(self, chunks: Iterator[Any], summary: Summary) -> None:
        self._chunks = chunks
        self.summary = summary

    def __next__(self) -> Any:
        return next(self._chunks)

    def close(self) -> None:
        """Stop early: what is in flight is cancelled and the fetcher closed."""
        self._chunks.close()  # type: ignore[attr-defined]

    def __enter__(self) -> ScoreChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_scores(covers: Covers, *, keep: str | Sequence[str] | None = None, min_prob: float | None = None,
                head: str | None = None, model: ModelArg = None, also: AlsoArg = None, embeddings: bool = False,
                url_col: str = URL_COL, allow_private_hosts: bool = False, concurrency: int = 64, per_host: int = 16,
          timeout: float = 60.0,
                retries: int = 3, cache: bool = True, cache_max_size: str | int | None = None,
                local_files: bool = True, precision: str | None = None, tta: str | None = None,
                batch_size: int | None = None, workers: int = 4, encoding: str | None = None,
                progress: bool = False, chunk_rows: int = 4096, arrow: bool = False) -> ScoreChunks:
    """Like :func:`score`, chunk by chunk: DataFrames (or pyarrow Tables with ``arrow=True``) of at most
    ``chunk_rows`` rows, for inputs too large for memory (a catalog file, a generator of covers).

    Everything is checked when it is called, before any cover is fetched; the covers are fetched as the
    chunks are asked for. Rows sharing a cover are scored once across the whole run. With ``arrow=True``,
    an image given in memory has a null cover column (Arrow cannot hold it).
    """
    from scorer.plan import ScoringPlan

    options = Options(allow_private_hosts=allow_private_hosts, concurrency=concurrency, per_host=per_host,
                      timeout=timeout, retries=retries, cache=cache, cache_max_size=cache_max_size,
                      local_files=local_files, precision=precision, tta=tta, batch_size=batch_size,
                      workers=workers)
    check_number("chunk_rows", chunk_rows, 1)
    if not isinstance(url_col, str) or not url_col:
        raise UsageError(f"url_col {url_col!r}: give the name of the column that holds the covers")
    path = None  # what covers are is checked before the model loads
    if isinstance(covers, (str, os.PathLike)):
        path = _catalog_path(covers)
    else:
        from scorer.sources.memory import check_covers

        check_covers(covers)
    plan = ScoringPlan.build(model=model, head=head, keep=keep, min_prob=min_prob, options=options, also=also,
                             embeddings=embeddings)
    return _Run(plan, url_col).chunks(path if path is not None else covers, chunk_rows, encoding, arrow, progress)


@dataclass
class _Run:
    """One scoring run of covers held by the caller (or a catalog file), on a checked plan."""

    plan: ScoringPlan
    url_col: str = URL_COL
    input: str | None = None  # a catalog file's path: relative cover paths are relative to its folder

    def attrs(self) -> dict:
        meta = self.plan.metadata(**({"input": self.input} if self.input else {}))
        return {k: v for k, v in meta.items() if k != "model"}  # the whole manifest is the model's: .info()

    def chunks(self, covers: Covers, chunk_rows: int, encoding: str | None, arrow: bool,
               progress: bool) -> ScoreChunks:
        """``covers`` as :func:`iter_scores` checked them: a catalog file's :class:`Path`, or in-memory covers."""
        from scorer.scoring import check_passthrough
        from scorer.sources.memory import frame_chunks

        base_dir = None
        if isinstance(covers, Path):
            path = covers
            from scorer.sources.catalog import iter_catalog

            schema, tables = iter_catalog(path, chunk_rows, encoding, url_col=self.url_col)
            columns: list[str] = schema.names
            if self.url_col != URL_COL and URL_COL in columns:
                raise UsageError(f"{path}: has both {self.url_col!r} (url_col) and {URL_COL!r} columns; rename one")
            base_dir = path.resolve().parent
            self.input = str(path.resolve())
            source: Iterator[Any] = tables
        else:
            source = frame_chunks(covers, chunk_rows, url_col=self.url_col)
            first = next(source)  # checks the DataFrame's columns now, not at the first chunk
            columns = [str(c) for c in first.columns]
            source = _chain(first, source)
        check_passthrough(columns, self.plan.columns())  # the cover column too: an output column may not be it
        scorer = self.plan.scorer(None, chunk_rows=chunk_rows)
        return ScoreChunks(self._stream(scorer, source, base_dir, arrow, progress), scorer.summary)

    def _stream(self, scorer, source: Iterator[Any], base_dir: Path | None, arrow: bool,
                progress: bool) -> Iterator[Any]:
        from scorer.progress import progress as bar

        attrs = self.attrs()
        with self.plan.fetcher(base_dir) as fetcher, bar("scoring", total=None, enabled=progress) as advance:
            scorer.fetcher = fetcher
            offset = 0
            for chunk in source:
                if hasattr(chunk, "iloc"):  # a DataFrame of covers
                    with blas_threads(1):  # while it scores, not while the caller works on what it yields
                        out = _score_frame(scorer, fetcher, chunk, arrow, advance, self.url_col)
                else:  # an Arrow table of a catalog file
                    with blas_threads(1):
                        table = _score_table(scorer, chunk, self.url_col, advance)
                    out = table if arrow else _to_pandas(table, offset)
                    offset += table.num_rows
                if not arrow:
                    out.attrs["scorer"] = attrs
                yield out


def _chain(first, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _catalog_path(covers: str | os.PathLike) -> Path:
    from scorer.sources.memory import ACCEPTED

    text = os.fspath(covers)
    path = Path(text)
    if "://" in text or path.suffix.lower() not in CATALOG_SUFFIXES:
        raise UsageError(f"covers: {text!r} is not a catalog file (.csv, .jsonl, .parquet); to score one cover, "
                         f"pass a list: [{text!r}]. Accepted: {ACCEPTED}")
    if not path.is_file():
        raise InputNotFound(f"{path}: no such file", str(path))
    return path


def _score_table(scorer, table: pa.Table, url_col: str, advance: Callable[[int], None]) -> pa.Table:
    """A catalog table scored; its cover column keeps its name (the stage reads ``cover_url``)."""
    if url_col == URL_COL:
        return scorer.score(table, on_progress=advance)
    names = table.column_names
    inside = table.rename_columns([URL_COL if n == url_col else n for n in names])
    out = scorer.score(inside, on_progress=advance)
    return out.rename_columns([url_col if n == URL_COL else n for n in out.column_names])


def _score_frame(scorer, fetcher, chunk: pd.DataFrame, arrow: bool, advance: Callable[[int], None],
                 url_col: str = URL_COL):
    """The chunk's rows with the score columns appended (the chunk's own columns untouched)."""
    import pyarrow as pa

    from scorer.sources.catalog import URL_COLUMN
    from scorer.sources.memory import cover_refs, shown_urls

    values = chunk[url_col].tolist()
    passthrough = None
    if arrow:  # converted first: a column Arrow cannot hold fails before the chunk's covers are fetched
        shown = chunk.assign(**{url_col: shown_urls(values)})
        try:
            passthrough = pa.Table.from_pandas(shown, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise UsageError(f"covers: a column cannot be converted to Arrow ({e}); use arrow=False") from None
    refs, errors = cover_refs(values, fetcher.memory)
    try:
        table = scorer.score(pa.table({URL_COLUMN: pa.array(refs, pa.string())}), preset=errors,
                             on_progress=advance)
    finally:
        fetcher.memory.clear()
    scores = table.drop_columns([URL_COLUMN])
    if arrow:
        assert passthrough is not None
        for name, column in zip(scores.column_names, scores.columns):
            passthrough = passthrough.append_column(name, column)
        return passthrough
    out = chunk.copy()
    for name, column in _to_pandas(scores, 0).items():
        out[name] = column.array  # by position: the chunk's index may repeat labels
    return out


def _to_pandas(table: pa.Table, offset: int) -> pd.DataFrame:
    import pandas as pd

    frame = table.to_pandas()
    frame.index = pd.RangeIndex(offset, offset + len(frame))
    return frame
