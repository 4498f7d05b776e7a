"""One file lock for every writer that must be alone: a dataset output, a labelled-set build, a cache prune.

An exclusive ``flock`` on a lock file (created if missing). The kernel drops it when the file is closed, also
when the process is killed, so a lock never outlives its run. POSIX only, like the whole package:
``import scorer`` refuses other systems with one line (``scorer/__init__.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class Held(Exception):
    """Another process holds the lock; ``holder`` is what it wrote into the lock file (its pid), if anything."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is locked by {holder or 'another process'}")
        self.path = path
        self.holder = holder


@contextlib.contextmanager
def file_lock(path: Path, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` inside the block. ``wait=False`` raises :class:`Held` at once when
    another process has it; the holder's pid is written into the file for that message."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Held(path, os.pread(fd, 200, 0).decode(errors="replace").strip()) from None
        # in place, padded: truncating a file with data makes ext4 flush it (auto_da_alloc), 6 ms a lock
        os.pwrite(fd, f"pid {os.getpid()}".ljust(32).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
