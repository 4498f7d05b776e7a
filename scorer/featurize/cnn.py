"""The CNN featurizer: EfficientNet-Lite exported to ONNX, run with onnxruntime.

The execution provider is picked once per session: CUDA when onnxruntime-gpu is installed and
a GPU answers, else the CPU. ``preferred_batch`` is the batch size the engine uses when the user
does not set one: small on CPU (larger batches buy nothing there, see ``benchmarks/``), large on
a GPU, where per-call overhead dominates.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
PREFERRED_BATCH = {CPU: 16, CUDA: 128}


def default_threads() -> int:
    """Cores this process may use (respects CPU affinity and container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def available_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it (``SCORER_DEVICE=cpu`` forces the CPU)."""
    import onnxruntime as ort

    if os.environ.get("SCORER_DEVICE", "").lower() == "cpu":
        return [CPU]
    return [p for p in (CUDA, CPU) if p in ort.get_available_providers()]


def session_options(threads: int | None = None, spinning: bool = True):
    """Tuned CPU session options (see ``benchmarks/model.py`` for the measurements behind them).

    - all graph optimisations (QDQ → QLinearConv fusion, NCHW → NHWC for int8 kernels);
    - intra-op threads = usable cores, one inter-op thread (the graph is a chain);
    - intra-op threads spin between kernels (onnxruntime's default). Although the decode threads
      share these cores, turning spinning off made end-to-end scoring 6-10% slower, with fewer
      cores busy: waking sleeping workers costs more than the spin takes from decoding.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return opts


class OnnxFeaturizer:
    """Pooled CNN features from uint8 NHWC batches. Normalisation happens inside the graph."""

    kind = "cnn"

    def __init__(self, onnx_path: Path, threads: int | None = None, providers: list[str] | None = None,
                 spinning: bool = True):
        import onnxruntime as ort

        self.path = Path(onnx_path)
        meta_path = self.path.with_suffix(".json")
        self.meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self.id = self.meta.get("id", self.path.stem)
        self.precision = self.meta.get("precision", "fp32")
        wanted = providers or available_providers()
        self.session = ort.InferenceSession(str(self.path), session_options(threads, spinning), providers=wanted)
        # onnxruntime falls back to the CPU (with a warning) when CUDA is built in but no GPU answers
        self.provider = self.session.get_providers()[0]
        if CUDA in wanted and self.provider != CUDA:
            log.warning("onnxruntime has CUDA but no GPU answered; running on the CPU")
        self.preferred_batch = PREFERRED_BATCH.get(self.provider, PREFERRED_BATCH[CPU])
        self.dim = int(self.session.get_outputs()[0].shape[1])

    @property
    def device(self) -> str:
        return "cuda" if self.provider == CUDA else "cpu"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        (features,) = self.session.run(["features"], {"images": np.ascontiguousarray(images, np.uint8)})
        return features


class FlipAveraged:
    """Flip test-time augmentation: the mean of a featurizer's features for each cover and its mirror
    image (twice the inference cost)."""

    kind = "cnn"

    def __init__(self, inner: OnnxFeaturizer):
        self.inner = inner
        self.id = f"{inner.id}+flip"
        self.path, self.meta, self.dim = inner.path, inner.meta, inner.dim

    def __getattr__(self, name: str):  # provider, preferred_batch, precision, device: the inner session's
        return getattr(self.inner, name)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, np.uint8)
        return (self.inner(images) + self.inner(np.ascontiguousarray(images[:, :, ::-1]))) / 2
