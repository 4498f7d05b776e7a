"""The on-disk cache of feature vectors (and perceptual hashes), by featurizer id and image sha256."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from scorer.fetch import default_cache_root
from scorer.files import atomic_write


def default_cache_dir() -> Path:
    return default_cache_root() / "features"


class FeatureCache:
    """One ``.npy`` per (featurizer id, image sha256); written atomically."""

    def __init__(self, root: Path, featurizer_id: str):
        self.dir = Path(root) / featurizer_id

    def path(self, sha: str) -> Path:
        return self.dir / sha[:2] / f"{sha}.npy"

    def get(self, sha: str) -> np.ndarray | None:
        try:
            return np.load(self.path(sha), allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):
            return None

    def put(self, sha: str, vector: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, vector)
        atomic_write(self.path(sha), buf.getvalue())
