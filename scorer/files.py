"""Files written atomically (beside the target, then renamed) with the mode the umask gives.

``tempfile.mkstemp`` creates files 0600 whatever the umask; renamed into place, such a file is
unreadable to a downstream job under another account, unlike every other tool's files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def current_umask() -> int:
    """The process's umask. Read from ``/proc/self/status`` where there is one (Linux): reading it with
    :func:`os.umask` means setting it for a moment, which another thread creating a file could see."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere, the only way; set straight back
    os.umask(mask)
    return mask


def temp_beside(path: Path, suffix: str = ".tmp") -> str:
    """A new, empty temporary file in ``path``'s folder, with the mode the umask gives (not 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    return tmp


def publish_dir(staging: Path, target: Path, before_replacing: Callable[[Path], None] | None = None) -> None:
    """Put the finished folder ``staging`` (made with ``mkdtemp`` beside ``target``) in ``target``'s place, with
    the mode the umask gives (``mkdtemp`` makes it owner-only; a model or a report is meant to be shared).
    An existing ``target`` is removed first, once ``before_replacing(target)`` has not objected."""
    staging.chmod(0o777 & ~current_umask())
    if target.exists():
        if before_replacing is not None:
            before_replacing(target)
        shutil.rmtree(target)
    staging.rename(target)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``: a reader sees the old file or the new one, never half of one."""
    tmp = temp_beside(Path(path))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
