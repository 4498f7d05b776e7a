"""Waiting for a moment a test needs (a shard written, a journal line, a thread done), failing loudly when it
never comes: a loop that falls through after its deadline would let the test go on and fail later for the
wrong reason, or pass having tested nothing."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterable

import pytest

#: a generous limit for something that takes seconds on an idle machine: only a hang should reach it
PATIENCE = 120.0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = PATIENCE,
             proc: subprocess.Popen | None = None, poll: float = 0.02) -> None:
    """Return as soon as ``condition()`` holds; fail the test saying ``what`` did not happen within ``timeout``
    seconds, or (with ``proc``) that the process ended before it did."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: never happened, the process ended first (exit {proc.returncode})", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s", pytrace=False)
        time.sleep(poll)


def join_all(threads: Iterable[threading.Thread], what: str, timeout: float = PATIENCE) -> None:
    """Join every thread; fail naming how many are still running after ``timeout`` seconds."""
    threads = list(threads)
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if alive := [t.name for t in threads if t.is_alive()]:
        pytest.fail(f"{what}: {len(alive)} of {len(threads)} threads still running after {timeout:.0f} s "
                    f"({', '.join(alive)})", pytrace=False)


class FakeClock:
    """A monotonic clock that moves only when slept on (or :meth:`advance`\\ d): for code that takes ``sleep``
    and ``clock`` (``MusicBrainzClient``), and for the fakes that judge its pacing by the same clock."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
