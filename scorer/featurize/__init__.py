"""Featurizers: uint8 RGB batches ``(N, 224, 224, 3)`` → float32 feature matrices.

Two kinds: ``cnn`` (the ONNX EfficientNet, 1280-d) and ``colour`` (HSV histogram, 512-d).
"""

from __future__ import annotations

from scorer.featurize.cnn import FlipAveraged, OnnxFeaturizer
from scorer.featurize.colour import ColourFeaturizer

__all__ = ["ColourFeaturizer", "FlipAveraged", "OnnxFeaturizer"]
