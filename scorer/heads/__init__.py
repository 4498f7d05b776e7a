"""Heads: feature matrices → genre probabilities ``(N, n_genres)``, rows summing to 1.

Every head loads with the runtime dependencies only (numpy, onnxruntime); training lives in
``training/``. Files: ``*.npz`` for kNN and MLP (plain arrays), ``*.onnx`` for XGBoost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from .knn import KnnHead
from .mlp import MlpHead
from .onnx_head import OnnxHead


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
    raise ValueError(f"{path}: unknown head kind {kind!r}")


class EnsembleHead:
    """Mean of the member heads' probabilities."""

    featurizer = "*"

    def __init__(self, members: list[Head], name: str = "ensemble"):
        self.name = name
        self.members = members

    def predict_proba_from(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return np.mean([h.predict_proba(features[h.featurizer]) for h in self.members], axis=0)


__all__ = ["EnsembleHead", "Head", "KnnHead", "MlpHead", "OnnxHead", "load_head"]
