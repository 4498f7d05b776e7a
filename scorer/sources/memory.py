"""Covers a caller holds in Python: a pandas DataFrame with a ``cover_url`` column, or any iterable of covers,
each an http(s) URL, a local path, or an image already in memory (a file's bytes, a PIL image, a numpy array).

:func:`frame_chunks` cuts them into DataFrames of ``chunk_rows``; :func:`cover_refs` gives each row the ref the
fetcher takes: the URL or path itself, or ``memory:<sha256>`` for an image in memory (registered in the
fetcher's :attr:`~scorer.fetch.CoverFetcher.memory`, so equal images are scored once), or a row error.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
from PIL import Image

from scorer.errors import RowError, UsageError
from scorer.sources.catalog import URL_COLUMN

#: the scheme of refs to :attr:`scorer.fetch.CoverFetcher.memory`; never a cover URL of a catalog (unknown there:
#: bad_url)
MEMORY = "memory:"

IMAGE_TYPES = (bytes, bytearray, memoryview, Image.Image, np.ndarray)
ACCEPTED = ("a pandas DataFrame with a cover_url column (or a Series of covers), a list (or any iterable) of covers "
            "(URLs, paths, or images: bytes, PIL images, numpy arrays), or the path of a catalog file (.csv, .jsonl, "
            ".parquet)")


def frame_chunks(covers: pd.DataFrame | Iterable, chunk_rows: int, url_col: str = URL_COLUMN
                 ) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_rows`` rows (at least one, maybe empty, so the columns are always there).

    A DataFrame keeps its index and columns (its covers in ``url_col``), a Series its index (its values are
    the covers); an iterable becomes a ``url_col`` column (paths as text) with its position as the index, read
    ``chunk_rows`` at a time, so a generator need not fit in memory."""
    if isinstance(covers, pd.Series):  # a column of covers: its index is kept
        covers = covers.to_frame(url_col)
    if isinstance(covers, pd.DataFrame):
        if url_col not in covers.columns:
            found = ", ".join(map(str, covers.columns)) or "none"
            raise UsageError(f"covers: the DataFrame has no {url_col!r} column (found: {found}); each row needs "
                             f"a cover in it (an http(s) URL, a local path or an image), or name the column "
                             f"that has them with url_col")
        for start in range(0, max(len(covers), 1), chunk_rows):
            yield covers.iloc[start:start + chunk_rows]
        return
    items = iter(covers)
    start = 0
    while True:
        block = list(itertools.islice(items, chunk_rows))
        if not block and start:
            return
        column = np.empty(len(block), dtype=object)  # element by element: arrays must stay whole cells
        for i, item in enumerate(block):
            column[i] = os.fspath(item) if isinstance(item, os.PathLike) else item
        yield pd.DataFrame({url_col: column}, index=pd.RangeIndex(start, start + len(block)))
        start += len(block)
        if len(block) < chunk_rows:
            return


def check_covers(covers: object) -> None:
    """A :class:`UsageError` for what is neither a DataFrame, an iterable of covers, nor a path."""
    if isinstance(covers, IMAGE_TYPES):
        raise UsageError(f"covers: got one image ({type(covers).__name__}); pass a list of them. Accepted: "
                         f"{ACCEPTED}")
    if isinstance(covers, dict) or not isinstance(covers, (pd.DataFrame, Iterable)):
        raise UsageError(f"covers: got a {type(covers).__name__}. Accepted: {ACCEPTED}")


def cover_refs(values: Iterable, memory: dict[str, object]) -> tuple[list[str], list[RowError | None]]:
    """The fetcher's ref for each ``cover_url`` value and the error of a value that is no cover at all;
    images in memory are added to ``memory`` under their ref."""
    refs: list[str] = []
    errors: list[RowError | None] = []
    for value in values:
        ref, error = "", None
        if isinstance(value, IMAGE_TYPES):
            image = bytes(value) if isinstance(value, (bytearray, memoryview)) else value
            ref = memory_ref(image)
            memory[ref] = image
        elif isinstance(value, str):
            ref = value
        elif isinstance(value, os.PathLike):
            ref = os.fspath(value)
        elif not _missing(value):
            error = RowError("bad_url", f"cover_url is a {type(value).__name__}: give an http(s) URL, a local path "
                                        "or an image (bytes, PIL image, numpy array)")
        refs.append(ref)
        errors.append(error)
    return refs, errors


def _missing(value: object) -> bool:
    """None, NaN, NA, NaT: an empty cell (its row is ``missing_url``)."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def memory_ref(image: bytes | Image.Image | np.ndarray) -> str:
    """``memory:`` + the SHA-256 of the image's kind, shape and content: equal images, equal refs."""
    h = hashlib.sha256()
    if isinstance(image, bytes):
        h.update(b"bytes:")
        h.update(image)
    elif isinstance(image, np.ndarray):
        h.update(f"array:{image.dtype}:{image.shape}:".encode())
        h.update(np.ascontiguousarray(image).tobytes() if image.dtype != object else repr(image).encode())
    else:
        h.update(f"pil:{image.mode}:{image.size}:".encode())
        h.update(image.tobytes())
    return MEMORY + h.hexdigest()


def shown_urls(values: Iterable) -> list[str | None]:
    """The ``cover_url`` text of each value for Arrow output: a URL or path as given; None for an image."""
    out: list[str | None] = []
    for v in values:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, os.PathLike):
            out.append(os.fspath(v))
        else:
            out.append(None)
    return out
