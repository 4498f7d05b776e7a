"""The CNN featurizer: EfficientNet-Lite exported to ONNX, run with onnxruntime.

The execution provider is picked once per session: CUDA when onnxruntime-gpu is installed and
a GPU answers, else the CPU. ``preferred_batch`` is the batch size the engine uses when the user
does not set one: 64 on the CPU (the heads, familiarity and hand-offs cost per batch, so larger
batches keep the cores busier end to end), 128 on a GPU, where per-call overhead dominates.

On the CPU a batch is cut into slices of ``SLICE`` covers, and one thread per core takes the next
slice until none is left, each slice run on ONE onnxruntime thread (``session.run`` releases the GIL
and is safe to call concurrently), rather than the whole batch on an N-thread intra-op pool: the
pool's threads spin at every kernel's barrier, and on cores shared with the decode threads (or other
processes) a preempted thread holds the others spinning; small slices taken in turn let a thread that
was held up take fewer. The same features bit for bit. Measurements: ``benchmarks/speed.py`` and the
README's "Speed and memory".
"""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
PREFERRED_BATCH = {CPU: 64, CUDA: 128}
SLICE = 4  # covers per one-thread run on the CPU


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
    - intra-op threads = ``threads`` (the CPU featurizer asks for one and runs slices side by side),
      one inter-op thread (the graph is a chain);
    - where there are several intra-op threads (a GPU session's CPU fallback kernels), they spin
      between kernels (onnxruntime's default).
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
        #: concurrent one-thread runs a CPU batch is cut into (the cores, or ``threads``)
        self.parallel = threads or default_threads()
        on_cpu = wanted[0] == CPU
        self.session = ort.InferenceSession(str(self.path), session_options(1 if on_cpu else threads, spinning),
                                            providers=wanted)
        # onnxruntime falls back to the CPU (with a warning) when CUDA is built in but no GPU answers
        self.provider = self.session.get_providers()[0]
        if CUDA in wanted and self.provider != CUDA:
            log.warning("onnxruntime has CUDA but no GPU answered; running on the CPU")
            self.session = ort.InferenceSession(str(self.path), session_options(1, spinning), providers=[CPU])
        if self.provider != CPU:
            self.parallel = 1
        self.preferred_batch = PREFERRED_BATCH.get(self.provider, PREFERRED_BATCH[CPU])
        self.dim = int(self.session.get_outputs()[0].shape[1])
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @property
    def device(self) -> str:
        return "cuda" if self.provider == CUDA else "cpu"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, np.uint8)
        slices = min(self.parallel, len(images))
        if slices <= 1:
            return self._run(images)
        parts = np.array_split(images, max(slices, -(-len(images) // SLICE)))
        out: list[np.ndarray | None] = [None] * len(parts)
        todo = iter(range(len(parts)))
        lock = threading.Lock()

        def work() -> None:  # each thread takes the next slice: a thread held up by a decode thread takes fewer
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                out[i] = self._run(parts[i])

        pending = [self._threads().submit(work) for _ in range(slices - 1)]
        work()  # the calling thread takes slices too
        for f in pending:
            f.result()
        return np.concatenate(out)  # type: ignore[arg-type]

    def _run(self, images: np.ndarray) -> np.ndarray:
        (features,) = self.session.run(["features"], {"images": np.ascontiguousarray(images)})
        return features

    def _threads(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.parallel - 1, thread_name_prefix="scorer-onnx")
            return self._pool


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
