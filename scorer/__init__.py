"""scorer: predict the music genre of albums from their cover art, and keep the genres you like.

The library is the product; the ``scorer`` command is a thin shell over these functions::

    import scorer
    scored = scorer.score(df, keep="rock,pop")   # a DataFrame with a cover_url column in, scores out

Importing ``scorer`` is cheap: numpy, pandas, pyarrow and onnxruntime load at the first call that needs
them (each name below is imported from :mod:`scorer.api` when first used).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from scorer.version import __version__

if os.name != "posix":  # file locks (fcntl), atomic renames over open files, /proc or getrusage for memory
    raise ImportError("scorer runs on Linux and macOS only (it needs POSIX file locks); on Windows, run it in WSL")

#: the public names, and the module each comes from
_EXPORTS = {
    "load_model": "api", "score": "api", "iter_scores": "api", "score_catalog": "api", "score_links": "api",
    "score_playlist": "api", "evaluate": "api", "train": "api", "report": "api", "dataset_musicbrainz": "api",
    "dataset_deezer": "api", "dataset_playlists": "api",
    "cache_info": "api", "prune_cache": "api", "clear_cache": "api", "ScoreChunks": "api", "FileRun": "api",
    "Model": "model", "ScorerError": "errors", "UsageError": "errors", "InputNotFound": "errors",
    "RunLocked": "errors", "ServiceError": "errors", "STATUS_CODES": "errors", "EXIT_CODES": "errors",
    "similar": "api",
}

__all__ = [  # the names of _EXPORTS, spelled out for tools that read __all__ without running it
    "EXIT_CODES", "STATUS_CODES", "FileRun", "InputNotFound", "Model", "RunLocked", "ScoreChunks", "ScorerError",
    "ServiceError", "UsageError", "__version__",
    "cache_info", "clear_cache", "dataset_musicbrainz", "evaluate", "iter_scores", "load_model", "prune_cache",
    "dataset_deezer", "dataset_playlists",
    "report", "score", "score_catalog", "score_links", "score_playlist", "train",
    "similar",
]

if TYPE_CHECKING:  # what type checkers and editors see; at run time, __getattr__ below
    from scorer.api import (
        FileRun,
        ScoreChunks,
        cache_info,
        clear_cache,
        dataset_deezer,
        dataset_musicbrainz,
        dataset_playlists,
        evaluate,
        iter_scores,
        load_model,
        prune_cache,
        report,
        score,
        score_catalog,
        score_links,
        score_playlist,
        similar,
        train,
    )
    from scorer.errors import EXIT_CODES, STATUS_CODES, InputNotFound, RunLocked, ScorerError, ServiceError, UsageError
    from scorer.model import Model


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scorer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
