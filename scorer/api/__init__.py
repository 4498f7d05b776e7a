"""The library: each command of ``scorer`` as a function, with pandas in and out where it fits.

``scorer/__init__.py`` exports these lazily, so ``import scorer`` loads none of numpy, pandas, pyarrow or
onnxruntime; these modules import them inside the functions for the same reason. The command line
(:mod:`scorer.cli`) parses its arguments, calls these and prints what they return. Every argument is a
keyword the function names (a misspelt one is a ``TypeError``); every bad value is a
:class:`~scorer.errors.UsageError` raised before any work, naming the parameter (the command line names the
flag).

Scoring runs BLAS on one thread while it scores (:func:`scorer.options.blas_threads`), as it was afterwards;
nothing else about the caller's process is changed. Each call opens its own fetcher, with its event loop on a
thread of its own, so the functions can be called from several threads and from inside a running asyncio loop
(Jupyter's).

``scoring``: covers in memory or a catalog, to pandas; ``files``: catalog, link file and playlist runs into
Parquet; ``training``: train, evaluate, report, labelled sets; ``cache``: the cache.
"""

from scorer.api.cache import cache_info, clear_cache, prune_cache
from scorer.api.datasets import dataset_deezer, dataset_playlists
from scorer.api.files import FileRun, score_catalog, score_links, score_playlist
from scorer.api.scoring import CATALOG_SUFFIXES, Covers, ModelArg, ScoreChunks, iter_scores, load_model, score
from scorer.api.similar import similar
from scorer.api.training import (
    EXPORT_MODULES,
    TRAIN_MODULES,
    TRAIN_SIZE,
    Data,
    dataset_musicbrainz,
    evaluate,
    report,
    require,
    train,
)

__all__ = [
    "CATALOG_SUFFIXES", "EXPORT_MODULES", "TRAIN_MODULES", "TRAIN_SIZE", "Covers", "Data", "FileRun", "ModelArg",
    "ScoreChunks", "cache_info", "clear_cache", "dataset_musicbrainz", "evaluate", "iter_scores", "load_model",
    "dataset_deezer", "dataset_playlists",
    "prune_cache", "report", "require", "score", "score_catalog", "score_links", "score_playlist", "train",
    "similar",
]
