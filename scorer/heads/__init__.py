"""Heads: feature matrices → genre probabilities ``(N, n_genres)``, rows summing to 1.

Every head loads with the runtime dependencies only (numpy, onnxruntime); training lives in
``scorer/training/``. Files: ``*.npz`` for kNN, MLP and linear (plain arrays), ``*.onnx`` for XGBoost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from scorer.heads.knn import KnnHead
from scorer.heads.linear import LinearHead
from scorer.heads.mlp import MlpHead
from scorer.heads.onnx_head import OnnxHead


class Head(Protocol):
    name: str
    featurizer: str  # "cnn" or "colour": which features it reads

    def predict_proba(self, features: np.ndarray) -> np.ndarray: ...


def load_head(name: str, featurizer: str, path: Path) -> Head:
    """Load one head file; the kind is read from the file name's suffix and stem."""
    if path.suffix == ".onnx":
        return OnnxHead(name, featurizer, path)
    kind = str(np.load(path, allow_pickle=False)["kind"])
    if kind == "knn":
        return KnnHead.load(name, featurizer, path)
    if kind == "mlp":
        return MlpHead.load(name, featurizer, path)
    if kind == "linear":
        return LinearHead.load(name, featurizer, path)
    raise ValueError(f"{path}: unknown head kind {kind!r}")


class EnsembleHead:
    """Mean of the member heads' probabilities, or their weighted mean (a blend)."""

    featurizer = "*"

    def __init__(self, members: list[Head], name: str = "ensemble", weights: list[float] | None = None):
        self.name = name
        self.members = members
        w = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(w) != len(members) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"{name}: need one non-negative weight per member, not all zero")
        self.weights = w / w.sum()

    def predict_proba_from(self, features: dict[str, np.ndarray]) -> np.ndarray:
        probs = [h.predict_proba(features[h.featurizer]) for h in self.members]
        return np.tensordot(self.weights, np.stack(probs), axes=1).astype(np.float32)


__all__ = ["EnsembleHead", "Head", "KnnHead", "LinearHead", "MlpHead", "OnnxHead", "load_head"]
