"""A head stored as an ONNX classifier (XGBoost, converted at training time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxHead:
    def __init__(self, name: str, featurizer: str, path: Path, threads: int = 1):
        import onnxruntime as ort

        self.name = name
        self.featurizer = featurizer
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        self.output_name = "probabilities" if "probabilities" in outputs else outputs[-1]

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        (proba,) = self.session.run([self.output_name], {self.input_name: np.asarray(features, np.float32)})
        return np.asarray(proba, dtype=np.float32)
