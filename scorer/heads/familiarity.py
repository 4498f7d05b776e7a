"""How like the training covers a cover is: the ``familiarity`` column.

A cover's *similarity* is the mean cosine similarity of its CNN features (projected on the
training covers' principal components) to its ``k`` most similar training covers. Its
*familiarity* places that similarity on the training covers' own scale: each training cover's
similarity to the covers of *other* groups (other artists, other near-duplicate clusters), so
that a training cover is not found familiar by being compared with itself or its re-issues.

``familiarity = f`` means that a share ``f`` of the training covers, each measured against the
covers of other groups, look less like the training covers than this cover does: about 0.5 for a
typical cover of the kind the model was trained on, near 0 for a cover unlike all of them (a
store, a style or a genre the model has not seen). It is a rank, not a probability of being right.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: neighbours whose similarities are averaged
K = 10
#: principal components kept (the similarity is measured in their space)
DIMS = 128
#: the training covers' similarities are stored as this many quantiles (0, 1, …, 100 %)
QUANTILES = 101


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def top_k_mean(sims: np.ndarray, k: int) -> np.ndarray:
    k = min(k, sims.shape[1])
    return np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:].mean(axis=1)


@dataclass
class Familiarity:
    """A fitted familiarity scale: the projection, the training covers' embeddings, and the quantiles of
    their own similarities."""

    mean: np.ndarray  # (d,) feature mean of the training covers
    components: np.ndarray  # (d, r) principal directions
    embeddings: np.ndarray  # (n, r) the training covers, projected and L2-normalised
    quantiles: np.ndarray  # (QUANTILES,) of the training covers' leave-group-out similarities
    k: int = K

    def embed(self, features: np.ndarray) -> np.ndarray:
        return l2_normalise((np.asarray(features, np.float32) - self.mean) @ self.components)

    def similarity(self, features: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Mean cosine similarity to the ``k`` most similar training covers, per row."""
        q = self.embed(features)
        out = np.empty(len(q), dtype=np.float32)
        for i in range(0, len(q), chunk):
            out[i:i + chunk] = top_k_mean(q[i:i + chunk] @ self.embeddings.T, self.k)
        return out

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Familiarity in [0, 1] per row (see the module's docstring)."""
        return self.scale(self.similarity(features))

    def scale(self, similarity: np.ndarray) -> np.ndarray:
        levels = np.linspace(0.0, 1.0, len(self.quantiles))
        return np.interp(similarity, self.quantiles, levels).astype(np.float32)

    @classmethod
    def fit(cls, features: np.ndarray, groups: list[str] | np.ndarray | None = None, k: int = K,
            dims: int = DIMS) -> Familiarity:
        """Fit on the training covers' features; ``groups`` (artist, near-duplicate cluster) keeps a cover
        from being measured against its own group. Needs numpy only."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"a familiarity scale needs the features of two training covers or more, got {x.shape}")
        mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        components = vt[:min(dims, vt.shape[0])].T.astype(np.float32)
        mean = mean.astype(np.float32)
        embeddings = l2_normalise((x.astype(np.float32) - mean) @ components)
        own = leave_group_out_similarity(embeddings, groups, k)
        quantiles = np.quantile(own, np.linspace(0.0, 1.0, QUANTILES)).astype(np.float32)
        return cls(mean, components, embeddings, quantiles, k)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, kind="familiarity", mean=self.mean, components=self.components,
                            embeddings=self.embeddings.astype(np.float16), quantiles=self.quantiles, k=self.k)

    @classmethod
    def load(cls, path: Path) -> Familiarity:
        z = np.load(path, allow_pickle=False)
        return cls(z["mean"], z["components"], z["embeddings"].astype(np.float32), z["quantiles"], int(z["k"]))


def leave_group_out_similarity(embeddings: np.ndarray, groups: list[str] | np.ndarray | None, k: int = K,
                               chunk: int = 1024) -> np.ndarray:
    """Each row's mean similarity to its ``k`` most similar rows of other groups (other rows, without groups)."""
    n = len(embeddings)
    ids = np.arange(n) if groups is None else np.unique(np.asarray(groups, dtype=str), return_inverse=True)[1]
    out = np.empty(n, dtype=np.float32)
    for i in range(0, n, chunk):
        sims = embeddings[i:i + chunk] @ embeddings.T
        sims[ids[i:i + chunk, None] == ids[None, :]] = -2.0
        out[i:i + chunk] = top_k_mean(sims, k)
    return out
