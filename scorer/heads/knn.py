"""k-nearest-neighbour head: exact cosine similarity against the stored training embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class KnnHead:
    """Similarity-weighted vote of the ``k`` most similar training covers.

    Exact search is a single matrix product: at a few thousand references that is faster
    than building an approximate index, and it has no recall loss. ``class_weight`` scales each
    genre's votes (inverse genre frequency: a rare genre's few neighbours are not outvoted by
    the many covers of a common one).
    """

    def __init__(self, name: str, featurizer: str, embeddings: np.ndarray, labels: np.ndarray,
                 n_classes: int, k: int = 10, weighted: bool = True, class_weight: np.ndarray | None = None):
        self.name = name
        self.featurizer = featurizer
        self.embeddings = l2_normalise(embeddings)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_classes = n_classes
        self.k = min(k, len(self.labels))
        self.weighted = weighted
        self.class_weight = (np.ones(n_classes, dtype=np.float32) if class_weight is None
                             else np.asarray(class_weight, dtype=np.float32))

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        sims = l2_normalise(features) @ self.embeddings.T
        top = np.argpartition(-sims, self.k - 1, axis=1)[:, : self.k]
        votes = np.zeros((len(features), self.n_classes), dtype=np.float32)
        weights = np.clip(np.take_along_axis(sims, top, axis=1), 1e-6, None) if self.weighted \
            else np.ones(top.shape, dtype=np.float32)
        rows = np.repeat(np.arange(len(features)), self.k)
        labels = self.labels[top]
        np.add.at(votes, (rows, labels.ravel()), (weights * self.class_weight[labels]).ravel())
        total = votes.sum(axis=1, keepdims=True)
        return np.divide(votes, total, out=np.full_like(votes, 1.0 / self.n_classes), where=total > 0)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, kind="knn", embeddings=self.embeddings.astype(np.float16),
                            labels=self.labels.astype(np.int16), n_classes=self.n_classes,
                            k=self.k, weighted=self.weighted, class_weight=self.class_weight)

    @classmethod
    def load(cls, name: str, featurizer: str, path: Path) -> KnnHead:
        z = np.load(path, allow_pickle=False)
        return cls(name, featurizer, z["embeddings"].astype(np.float32), z["labels"],
                   int(z["n_classes"]), int(z["k"]), bool(z["weighted"]),
                   z["class_weight"] if "class_weight" in z.files else None)
