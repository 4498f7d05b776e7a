"""The CNN featurizer: EfficientNet-Lite exported to ONNX, run with onnxruntime."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def default_threads() -> int:
    """Cores this process may use (respects CPU affinity and container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class OnnxFeaturizer:
    """Pooled CNN features from uint8 NHWC batches. Normalisation happens inside the graph."""

    kind = "cnn"

    def __init__(self, onnx_path: Path, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(onnx_path)
        meta_path = self.path.with_suffix(".json")
        self.meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self.id = self.meta.get("id", self.path.stem)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.dim = int(self.session.get_outputs()[0].shape[1])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        (features,) = self.session.run(["features"], {"images": np.ascontiguousarray(images, np.uint8)})
        return features
