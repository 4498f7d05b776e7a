"""One-hidden-layer MLP head, evaluated in numpy from its weight arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class MlpHead:
    """standardise → dense(hidden) → ReLU → dense(genres) → softmax."""

    def __init__(self, name: str, featurizer: str, mean: np.ndarray, scale: np.ndarray,
                 w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray):
        self.name = name
        self.featurizer = featurizer
        self.mean, self.scale = mean.astype(np.float32), scale.astype(np.float32)
        self.w1, self.b1 = w1.astype(np.float32), b1.astype(np.float32)
        self.w2, self.b2 = w2.astype(np.float32), b2.astype(np.float32)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        x = (np.asarray(features, np.float32) - self.mean) / self.scale
        hidden = np.maximum(x @ self.w1 + self.b1, 0.0)
        logits = hidden @ self.w2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def widened(self, present: np.ndarray, n_classes: int) -> MlpHead:
        """The same network answering for ``n_classes`` genres, of which it was fitted on
        ``present``: the others get probability 0."""
        if len(present) == n_classes:
            return self
        w2 = np.zeros((self.w2.shape[0], n_classes), dtype=np.float32)
        b2 = np.full(n_classes, -1e4, dtype=np.float32)
        w2[:, present], b2[present] = self.w2, self.b2
        return MlpHead(self.name, self.featurizer, self.mean, self.scale, self.w1, self.b1, w2, b2)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, kind="mlp", mean=self.mean, scale=self.scale,
                            w1=self.w1, b1=self.b1, w2=self.w2, b2=self.b2)

    @classmethod
    def load(cls, name: str, featurizer: str, path: Path) -> MlpHead:
        z = np.load(path, allow_pickle=False)
        return cls(name, featurizer, z["mean"], z["scale"], z["w1"], z["b1"], z["w2"], z["b2"])
