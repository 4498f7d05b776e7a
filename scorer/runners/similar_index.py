"""The index ``scorer similar`` searches: the rows of a scored output with their ``embedding`` (the network's
features, ``--embeddings``), as unit vectors ready for cosine similarity.

An index is a scored Parquet file, the folder of a sharded dataset output (its ``part-*.parquet``), or a
DataFrame with an ``embedding`` column (what ``scorer.score(..., embeddings=True)`` returns). :func:`open_index`
reads only its schema and metadata, so that a wrong index is a :class:`~scorer.errors.UsageError` before any
work; :meth:`IndexSource.read` then reads the rows and normalises the vectors once.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from scorer.errors import InputNotFound, UsageError

if TYPE_CHECKING:
    import pandas as pd

EMBEDDING = "embedding"
#: the column whose values a query may name instead of giving a cover
ID = "id"
#: the columns ``similar`` puts first; an index column of one of these names would be hidden by it
OWN_COLUMNS = ("query", "status", "error", "rank", "similarity")
#: index columns left out of the output: the vector, and the scoring status of rows that all scored ``ok``
LEFT_OUT = (EMBEDDING, "status", "error")
#: rows normalised at a time (float16 → float32 in blocks, so the float32 copy is the only large allocation)
_BLOCK = 16_384
#: every float16 as float32, by its bits: a table lookup converts 1.4x as fast as numpy's ``astype``
_HALF = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
#: the last index read from local files, under its files' (path, size, mtime): a notebook asking again reads
#: nothing (a scored file is replaced whole, so a changed file has a new size or mtime). One index at a time.
_LAST: dict[tuple, Index] = {}
_LAST_LOCK = threading.Lock()


@dataclass
class Index:
    """An index read: ``rows`` (its columns but :data:`LEFT_OUT`), ``unit`` (one float32 unit vector per row
    that has an embedding) and ``positions`` (each vector's row in ``rows``)."""

    rows: pa.Table
    unit: np.ndarray
    positions: np.ndarray
    ids: dict[str, int] = field(default_factory=dict)  # str(id) -> its first row with an embedding, else its first
    status: list[str | None] = field(default_factory=list)  # each row's scoring status and error, when it has them
    errors: list[str | None] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return int(self.unit.shape[1])

    def vector_of(self, row: int) -> int | None:
        """The vector index of row ``row``, or None when it has no embedding."""
        found = int(np.searchsorted(self.positions, row))
        return found if found < len(self.positions) and self.positions[found] == row else None


@dataclass
class IndexSource:
    """An index checked but not read yet: what it is (``name``), its ``metadata`` (the scorer metadata of a
    Parquet output, or a DataFrame's ``attrs["scorer"]``; empty when it has none) and its columns."""

    name: str
    metadata: dict
    columns: list[str]
    files: list[Any] = field(default_factory=list)  # Parquet files (paths), or [] for a DataFrame
    frame: pd.DataFrame | None = None
    sink: Any = None  # the DatasetSink of a dataset folder

    @property
    def featurizer_id(self) -> str | None:
        return self.metadata.get("featurizer_id")

    @property
    def tta(self) -> str | None:
        return self.metadata.get("tta")

    @property
    def has_ids(self) -> bool:
        return ID in self.columns

    def read_kept(self) -> Index:
        """:meth:`read`, or the index read last when it came from these very files, unchanged."""
        key = self._files_key()
        with _LAST_LOCK:
            kept = _LAST.get(key) if key is not None else None
        if kept is not None:
            return kept
        index = self.read()
        if key is not None:
            with _LAST_LOCK:
                _LAST.clear()
                _LAST[key] = index
        return index

    def _files_key(self) -> tuple | None:
        """The local files' paths, sizes and modification times; None for a DataFrame or a remote dataset."""
        if self.frame is not None or (self.sink is not None and not self.sink.local):
            return None
        try:
            stats = [(os.path.realpath(f), os.stat(f)) for f in self.files]
        except OSError:
            return None
        return tuple((path, st.st_size, st.st_mtime_ns, st.st_ino) for path, st in stats)

    def read(self) -> Index:
        """The rows and their unit vectors; a :class:`UsageError` when no row has an embedding."""
        if self.frame is not None:
            table = _frame_table(self.frame, self.name)
            vectors, positions = _frame_vectors(self.frame[EMBEDDING], self.name)
            unit = unit_vectors(vectors)
        else:
            import pyarrow.parquet as pq

            others = [c for c in self.columns if c != EMBEDDING]
            tables = [pq.read_table(f, columns=others, filesystem=self._fs) for f in self.files]
            table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
            unit, positions = self._read_vectors()
        if not len(positions):
            raise UsageError(f"--index {self.name}: no row has an embedding (no cover was scored ok)")
        rows = table.drop_columns([c for c in LEFT_OUT if c in table.column_names])
        index = Index(rows, unit, positions)
        if "status" in table.column_names:
            index.status = table.column("status").to_pylist()
        if "error" in table.column_names:
            index.errors = table.column("error").to_pylist()
        if ID in rows.column_names:
            ids = rows.column(ID).to_pylist()
            for row in positions.tolist():  # the first row of an id that has an embedding
                index.ids.setdefault(str(ids[row]), row)
            for row, value in enumerate(ids):  # and rows without one, so that their id still answers
                index.ids.setdefault(str(value), row)
        return index

    @property
    def _fs(self) -> Any:
        return self.sink.fs if self.sink is not None else None

    def _read_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The unit vectors of the files' embeddings and the row of each, a block of rows at a time: only the
        float32 result is held whole (the float16 column never is)."""
        import pyarrow.parquet as pq

        files = [pq.ParquetFile(f, filesystem=self._fs) for f in self.files]
        total = sum(f.metadata.num_rows for f in files)
        out: np.ndarray | None = None
        positions: list[np.ndarray] = []
        done = rows = 0
        for file in files:
            for batch in file.iter_batches(batch_size=_BLOCK, columns=[EMBEDDING]):
                vectors, found = arrow_vectors(batch.column(0), self.name)
                if out is None:
                    out = np.empty((total, vectors.shape[1]), dtype=np.float32)
                elif vectors.shape[1] != out.shape[1]:
                    raise UsageError(f"--index {self.name}: its embeddings are not all of one length")
                out[done:done + len(vectors)] = unit_vectors(vectors)
                positions.append(found + rows)
                done += len(vectors)
                rows += batch.num_rows
        if out is None:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        return out[:done], np.concatenate(positions)


def open_index(index: Any) -> IndexSource:
    """``index`` checked from its schema and metadata only: a :class:`UsageError` when it is no index."""
    import pandas as pd

    if isinstance(index, pd.DataFrame):
        source = IndexSource("(DataFrame)", dict(index.attrs.get("scorer") or {}), [str(c) for c in index.columns],
                             frame=index)
    elif isinstance(index, (str, os.PathLike)):
        source = _open_path(os.fspath(index))
    else:
        raise UsageError(f"--index: got a {type(index).__name__}; give a scored .parquet file, a dataset output "
                         f"folder, or a DataFrame with an {EMBEDDING!r} column")
    if EMBEDDING not in source.columns:
        raise UsageError(f"--index {source.name} has no {EMBEDDING!r} column: score it with --embeddings "
                         f"(embeddings=True in the library)")
    clash = [c for c in OWN_COLUMNS if c in source.columns and c not in LEFT_OUT]
    if clash:
        raise UsageError(f"--index {source.name} has a column named {', '.join(map(repr, clash))}, which the "
                         f"output of similar uses; rename it")
    return source


def _open_path(text: str) -> IndexSource:
    import pyarrow.parquet as pq

    from scorer.sinks import read_metadata

    path = Path(text)
    if path.is_dir():
        return _open_dataset(text)
    if path.suffix.lower() not in (".parquet", ".pq"):
        raise UsageError(f"--index {text}: give a scored .parquet file or a dataset output folder")
    if not path.is_file():
        raise InputNotFound(f"--index {text}: no such file", text)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise UsageError(f"--index {text}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
    try:
        metadata = read_metadata(path)
    except (KeyError, ValueError):  # a Parquet file scorer did not write: no network to check against
        metadata = {}
    _check_type(schema, text)
    return IndexSource(text, metadata, schema.names, files=[path])


def _open_dataset(text: str) -> IndexSource:
    """A sharded dataset output folder: its parts, which must all come from one network."""
    import pyarrow.parquet as pq

    from scorer.sinks.dataset import DatasetSink

    sink = DatasetSink(text)
    parts = sink.parts()
    if not parts:
        raise UsageError(f"--index {text}: a folder with no part-*.parquet files; give a scored .parquet file or "
                         f"a dataset output folder")
    metas = [sink.part_metadata(i) or {} for i in parts]
    networks = {(m.get("featurizer_id"), m.get("tta")) for m in metas}
    if len(networks) > 1:
        shown = "; ".join(f"{f} (tta {t})" for f, t in sorted(networks, key=str))
        raise UsageError(f"--index {text}: its parts were scored by different networks ({shown}); score it again "
                         f"with one model (--rescore)")
    files = [sink.part_path(i) for i in parts]
    schema = pq.read_schema(files[0], filesystem=sink.fs)
    _check_type(schema, text)
    return IndexSource(text, metas[0], schema.names, files=files, sink=sink)


def _check_type(schema: pa.Schema, name: str) -> None:
    if EMBEDDING not in schema.names:
        return  # said by open_index, in the same words for every kind of index
    kind = schema.field(EMBEDDING).type
    is_list = pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)
    if not is_list or not pa.types.is_floating(kind.value_type):
        raise UsageError(f"--index {name}: its {EMBEDDING!r} column is {kind}, not a list of floats")


def arrow_vectors(column: pa.ChunkedArray | pa.Array, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors, positions)``: the non-null embeddings of an Arrow column as an ``(n, D)`` array (their
    own float type) and the row of each."""
    import pyarrow.compute as pc

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count:
        valid = array.is_valid()
        positions = np.flatnonzero(valid.to_numpy(zero_copy_only=False))
        present = array.filter(valid)
    else:  # no copy
        positions, present = np.arange(len(array)), array
    if pa.types.is_fixed_size_list(array.type):
        dim = array.type.list_size
    else:
        lengths = pc.list_value_length(present).to_numpy(zero_copy_only=False)
        dim = int(lengths[0]) if len(lengths) else 0
        if len(lengths) and (lengths != dim).any():
            raise UsageError(f"--index {name}: its embeddings are not all of one length")
    flat = present.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(present), dim), positions


def _frame_vectors(column: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The non-null embeddings of a DataFrame's object column (numpy arrays or lists) and the row of each."""
    import pandas as pd

    cells = column.tolist()
    positions = np.array([i for i, v in enumerate(cells) if not _missing(v, pd)], dtype=np.int64)
    try:
        vectors = [np.asarray(cells[i], dtype=np.float32) for i in positions]
    except (TypeError, ValueError):
        raise UsageError(f"--index {name}: its {EMBEDDING!r} column holds something other than vectors") from None
    dims = {v.shape for v in vectors}
    if len(dims) > 1 or any(len(d) != 1 for d in dims):
        raise UsageError(f"--index {name}: its embeddings are not all vectors of one length")
    dim = next(iter(dims))[0] if dims else 0
    return (np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)), positions


def _missing(value: object, pd) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return bool(pd.isna(value))
    return False


def _frame_table(frame: pd.DataFrame, name: str) -> pa.Table:
    """The DataFrame's rows as Arrow, without the embedding; a named index becomes columns, as ``reset_index``."""
    rest = frame.drop(columns=[EMBEDDING])
    if any(n is not None for n in rest.index.names):
        rest = rest.reset_index()
    try:
        return pa.Table.from_pandas(rest, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as e:
        raise UsageError(f"--index {name}: a column cannot be converted to Arrow ({e})") from None


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` scaled to unit length, as float32 (a zero vector stays zero: it is like nothing)."""
    out = np.empty(vectors.shape, dtype=np.float32)
    half = vectors.dtype == np.float16
    for start in range(0, len(vectors), _BLOCK):
        part = vectors[start:start + _BLOCK]
        block = _HALF[part.view(np.uint16)] if half else np.asarray(part, dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        np.divide(block, norms[:, None], out=out[start:start + _BLOCK], where=norms[:, None] > 0)
        out[start:start + _BLOCK][norms == 0] = 0
    return out
