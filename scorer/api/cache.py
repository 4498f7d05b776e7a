"""The cache: what is in it, pruning it to a size, clearing it."""

from __future__ import annotations

from scorer.options import cache_bound


def cache_info() -> dict:
    """``scorer cache info``: where the cache is, and the files and size of each of its parts. ``bytes`` is
    what the disk spends (allocated blocks, index entries, folders: what ``du`` counts and the bound is on);
    ``logical_bytes`` is the files' own sizes."""
    from scorer.fetch.cache import cache_report

    # bytes: what the disk spends, as du counts it (the bound is on it); logical_bytes: the files' own sizes
    return cache_report()


def prune_cache(max_size: str | int | None = None) -> dict:
    """``scorer cache prune``: delete the least recently used covers until the cover cache is within
    ``max_size`` on the disk (e.g. ``"20GB"``; default: its bound). Returns what was deleted and what is
    left, in bytes on the disk (``logical_bytes``: the deleted files' own sizes)."""
    from scorer.fetch.cache import CoverCache

    bound = cache_bound("--max-size", max_size)
    cache = CoverCache.default(bound)
    left = cache.prune(bound)
    return {"root": str(cache.root), "files": cache.pruned.files, "bytes": cache.pruned.disk,
            "logical_bytes": cache.pruned.bytes, "left_bytes": left, "max_bytes": bound}


def clear_cache(everything: bool = False) -> dict:
    """``scorer cache clear``: delete the cached covers and training features (``everything``: also the
    checkpoints and saved splits that let fine-tuning runs resume). Returns the files deleted and the
    bytes they took on the disk (``logical_bytes``: their own sizes)."""
    from scorer.fetch.cache import clear_cache as clear
    from scorer.fetch.cache import default_cache_root

    gone = clear(everything=everything)
    return {"root": str(default_cache_root()), "files": gone.files, "bytes": gone.disk, "logical_bytes": gone.bytes}
