"""A linear softmax head: a fine-tuned network's own genre layer, evaluated in numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class LinearHead:
    """dense(genres) → softmax, on the featurizer's pooled features."""

    def __init__(self, name: str, featurizer: str, w: np.ndarray, b: np.ndarray):
        self.name = name
        self.featurizer = featurizer
        self.w, self.b = w.astype(np.float32), b.astype(np.float32)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        logits = np.asarray(features, np.float32) @ self.w + self.b
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, kind="linear", w=self.w, b=self.b)

    @classmethod
    def load(cls, name: str, featurizer: str, path: Path) -> LinearHead:
        z = np.load(path, allow_pickle=False)
        return cls(name, featurizer, z["w"], z["b"])
