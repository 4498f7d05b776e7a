"""A Parquet *dataset*: one part file per shard of the input, on a local path or any filesystem URI.

Layout (pyarrow and pandas skip names starting with ``_``, so readers see only the parts)::

    OUT/part-00000.parquet      rows 0 … N-1 of the catalog, scored
    OUT/part-00001.parquet      rows N … 2N-1
    OUT/_scorer/manifest.json   the run: options, and per shard its fingerprint and counts
    OUT/_scorer/summary.json    the last finished run's summary (machine-readable)
    OUT/_scorer/tmp/            parts being written; renamed into place when complete

A part is written under ``_scorer/tmp`` and moved into place, so a killed run never leaves a
half-written part where readers look; shard ``i`` always replaces part ``i``, so rows are never
duplicated. ``OUT`` may be ``s3://bucket/prefix`` or any URI pyarrow (or fsspec) understands.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from scorer.errors import OUTPUT_FAULTS, OutputUnavailable, RunLocked, UsageError, errno_of
from scorer.sinks.parquet import METADATA_KEY, write_options

PART = "part-{:05d}.parquet"
META_DIR = "_scorer"


def open_filesystem(uri: str | Path) -> tuple[pafs.FileSystem, str, bool]:
    """``(filesystem, root path in it, is_local)`` for a local path or a filesystem URI."""
    text = str(uri)
    if "://" not in text:
        return pafs.LocalFileSystem(), str(Path(text).expanduser().resolve()), True
    try:
        fs, root = pafs.FileSystem.from_uri(text)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        try:
            import fsspec
            from pyarrow.fs import FSSpecHandler, PyFileSystem
        except ImportError as e:
            raise UsageError(f"--out {text}: pyarrow cannot open this URI and fsspec is not installed") from e
        try:
            fs_, root = fsspec.core.url_to_fs(text)
        except (ValueError, ImportError) as e:
            raise UsageError(f"--out {text}: {e}") from e
        except OSError as e:  # fsspec connects as it opens (ftp, sftp, ...)
            raise OutputUnavailable(f"--out {text}: cannot reach it ({_first_line(e)})") from e
        return PyFileSystem(FSSpecHandler(fs_)), root.rstrip("/"), False
    return fs, root.rstrip("/"), isinstance(fs, pafs.LocalFileSystem)


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


class DatasetSink:
    def __init__(self, uri: str | Path):
        self.uri = str(uri)
        self.fs, self.root, self.local = open_filesystem(uri)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def part_path(self, shard: int) -> str:
        return self.path(PART.format(shard))

    def prepare(self) -> None:
        try:
            info = self.fs.get_file_info(self.root)
            if info.type == pafs.FileType.File:
                raise UsageError(f"--out {self.uri} is a file; give a folder for the dataset (or a .parquet name)")
            self.fs.create_dir(self.path(META_DIR, "tmp"), recursive=True)
            for stale in self.fs.get_file_info(pafs.FileSelector(self.path(META_DIR, "tmp"))):
                self.fs.delete_file(stale.path)  # parts a killed run left half-written
        except OSError as e:
            if errno_of(e) in OUTPUT_FAULTS:  # permission, space, read-only: the command line says them as such
                raise
            raise OutputUnavailable(f"--out {self.uri}: cannot reach it ({_first_line(e)})") from e

    def read_part(self, shard: int) -> pa.Table | None:
        """A finished part, or None (absent, or unreadable: it is redone)."""
        try:
            return pq.read_table(self.part_path(shard), filesystem=self.fs)
        except (FileNotFoundError, OSError, pa.ArrowInvalid):
            return None

    def part_metadata(self, shard: int) -> dict | None:
        """The ``scorer`` metadata of a finished part, from its footer only (cheap)."""
        try:
            schema = pq.read_schema(self.part_path(shard), filesystem=self.fs)
        except (FileNotFoundError, OSError, pa.ArrowInvalid):
            return None
        meta = (schema.metadata or {}).get(METADATA_KEY)
        return json.loads(meta) if meta else None

    def read_columns(self, shard: int, columns: list[str]) -> pa.Table:
        return pq.read_table(self.part_path(shard), filesystem=self.fs, columns=columns)

    def write_part(self, shard: int, table: pa.Table, metadata: dict) -> None:
        tmp = self.path(META_DIR, "tmp", f"{PART.format(shard)}.{uuid.uuid4().hex}")
        table = table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})
        with self._removed_on_failure(tmp):
            pq.write_table(table, tmp, filesystem=self.fs, **write_options(table.schema))
            self.fs.move(tmp, self.part_path(shard))

    @contextlib.contextmanager
    def _removed_on_failure(self, tmp: str) -> Iterator[None]:
        """A full disk, Ctrl-C or SIGTERM while writing leaves no temporary file behind."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(OSError):
                if self.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                    self.fs.delete_file(tmp)
            raise

    def parts(self) -> list[int]:
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        out = []
        for info in infos:
            name = info.path.rsplit("/", 1)[-1]
            if name.startswith("part-") and name.endswith(".parquet"):
                with contextlib.suppress(ValueError):
                    out.append(int(name[5:-8]))
        return sorted(out)

    def drop_parts_from(self, shards: int) -> int:
        """Delete parts ``shards`` and beyond (the catalog got shorter); how many were deleted."""
        gone = [i for i in self.parts() if i >= shards]
        for i in gone:
            self.fs.delete_file(self.part_path(i))
        return len(gone)

    def write_json(self, name: str, data: dict) -> None:
        tmp = self.path(META_DIR, "tmp", f"{name}.{uuid.uuid4().hex}")
        with self._removed_on_failure(tmp):
            with self.fs.open_output_stream(tmp) as f:
                f.write(json.dumps(data, indent=1, default=str).encode())
            self.fs.move(tmp, self.path(META_DIR, name))

    def read_json(self, name: str) -> dict | None:
        try:
            with self.fs.open_input_stream(self.path(META_DIR, name)) as f:
                return json.loads(f.read())
        except (FileNotFoundError, OSError, ValueError):
            return None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time. Local outputs lock ``_scorer/lock``; remote ones a lock file in the user's
        cache keyed by the URI (it keeps runs on one machine apart; across machines, schedule one writer)."""
        from scorer.locks import Held, file_lock

        if self.local:
            lock_path = Path(self.path(META_DIR, "lock"))
        else:
            from scorer.fetch import default_cache_root

            lock_path = default_cache_root() / "locks" / hashlib.sha256(self.uri.encode()).hexdigest()
        try:
            with file_lock(lock_path, wait=False):
                yield
        except Held as e:
            raise RunLocked(f"another run is writing {self.uri} ({e.holder or 'pid unknown'}); "
                            f"try again when it has finished") from None


def fingerprint(table: pa.Table) -> str:
    """A hash of a shard's input rows (all columns), to tell an unchanged shard from a changed one."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()
