"""Covers on the local disk: catalog rows may hold a path (relative to the catalog) or a file:// URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from scorer.errors import RowError


def local_path(ref: str, base_dir: Path | None) -> Path:
    if ref.lower().startswith("file:"):
        return Path(unquote(urlsplit(ref).path))
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def read_local(path: Path, max_bytes: int) -> bytes:
    """Read one file, or raise :class:`RowError` (``not_found``, ``unreadable``, ``too_large``)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise RowError("not_found", f"no such file: {path}") from e
    except OSError as e:
        raise RowError("unreadable", f"{path}: {e.strerror}") from e
    if size > max_bytes:
        raise RowError("too_large", f"{path} is {size} bytes (limit {max_bytes})")
    try:
        return path.read_bytes()
    except IsADirectoryError as e:
        raise RowError("unreadable", f"{path} is a directory") from e
    except OSError as e:
        raise RowError("unreadable", f"{path}: {e.strerror}") from e
