"""The options the library functions and the command line share, checked in one place: each bad value is a
:class:`~scorer.errors.UsageError` naming the flag, raised before any work starts."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scorer.errors import UsageError

if TYPE_CHECKING:
    from scorer.fetch import FetchOptions

@contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """BLAS on ``n`` threads inside the block, as it was after it (threadpoolctl, so it works after numpy has
    loaded). Scoring leaves the cores to onnxruntime: the heads' small matrix products gain nothing from BLAS
    threads, and idle OpenBLAS threads spin and halve throughput. The limit is the process's while the block
    runs (BLAS libraries have no per-thread setting)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield


def check_number(flag: str, value: Any, low: float, high: float | None = None, whole: bool = True) -> None:
    """``value`` is a number (a whole one when ``whole``) within ``[low, high]``, or a :class:`UsageError`."""
    kind = "a whole number" if whole else "a number"
    span = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"
    bad_type = isinstance(value, bool) or not isinstance(value, int if whole else (int, float))
    if bad_type or not math.isfinite(value) or value < low or (high is not None and value > high):
        raise UsageError(f"{flag} {value!r}: give {kind} {span}")


def check_min_prob(value: Any) -> None:
    """``--min-prob`` is a number; its range is the keep filter's to check, with the command line's message."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)):
        raise UsageError(f"--min-prob {value!r}: give a number between 0 and 1")


def cache_bound(flag: str, value: str | int | None) -> int:
    """The cover cache's bound in bytes: ``value`` (e.g. ``"20GB"``), or ``$SCORER_CACHE_MAX_SIZE`` / 10 GB when
    None; a bad size is a :class:`UsageError` naming ``flag`` (or the variable, when that is what is wrong)."""
    from scorer.fetch.cache import default_max_bytes, parse_size

    try:
        bound = parse_size(value) if value is not None else None
        return default_max_bytes() if bound is None else bound
    except ValueError as e:
        raise UsageError(f"{flag}: {e}" if value is not None else str(e)) from None


def keep_text(keep: str | Sequence[str] | None) -> str | None:
    """``keep`` as the command line spells it: ``"rock,pop"`` or ``["rock", "pop"]``."""
    if keep is None or isinstance(keep, str):
        return keep
    if not all(isinstance(g, str) for g in keep):
        raise UsageError(f"--keep {keep!r}: give genre names, as a list or comma-separated")
    return ",".join(keep)


#: the accepted range of each numeric option, ``(low, high)`` (``None``: no upper bound): the library checks
#: these, and the command line's flags show and check the same ranges
RANGES: dict[str, tuple[float, float | None]] = {
    "concurrency": (1, 1024), "per_host": (1, 1024), "timeout": (0.1, None), "retries": (0, 20),
    "workers": (1, 256), "batch_size": (1, 1024),
}


def check_range(name: str, value: Any, whole: bool = True) -> None:
    """``value`` within :data:`RANGES` of option ``name`` (flag ``--name-with-dashes`` in the message)."""
    low, high = RANGES[name]
    check_number("--" + name.replace("_", "-"), value, low, high, whole=whole)


@dataclass(frozen=True)
class Options:
    """Scoring options, named as the command line's flags (``allow_private_hosts`` is
    ``--allow-private-hosts``; ``local_files=False`` is ``--no-local-files``). See ``scorer catalog --help``."""

    allow_private_hosts: bool = False
    concurrency: int = 64
    per_host: int = 16
    timeout: float = 60.0
    retries: int = 3
    cache: bool = True
    cache_max_size: str | int | None = None
    local_files: bool = True
    precision: str | None = None
    tta: str | None = None
    batch_size: int | None = None
    workers: int = 4

    def check(self) -> Options:
        check_range("concurrency", self.concurrency)
        check_range("per_host", self.per_host)
        check_range("timeout", self.timeout, whole=False)
        check_range("retries", self.retries)
        check_range("workers", self.workers)
        if self.batch_size is not None:
            check_range("batch_size", self.batch_size)
        return self

    def fetch(self) -> FetchOptions:
        """How covers are fetched, from these options; a bad ``--cache-max-size`` is a :class:`UsageError`."""
        from scorer.fetch import FetchOptions

        max_bytes = cache_bound("--cache-max-size", self.cache_max_size)
        return FetchOptions(concurrency=self.concurrency, per_host=self.per_host, deadline=self.timeout,
                            retries=self.retries, allow_private_hosts=self.allow_private_hosts, cache=self.cache,
                            local_files=self.local_files, cache_max_bytes=max_bytes,
                            connect_timeout=min(10.0, self.timeout), read_timeout=min(20.0, self.timeout))
