"""Model-only throughput: the ONNX featurizer on pre-decoded real covers, no I/O.

This is the ceiling the pipeline is measured against. Threads = usable cores; each repetition
featurizes ``--images`` covers in batches of the given size, after one unrecorded warm-up.

    python -m benchmarks.model --precision fp32 int8 --batch 1 8 32 64 --reps 3
    python -m benchmarks.model --tuning    # the session options behind scorer's defaults
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from .common import cover_files, rate, repeat


def images(n: int) -> np.ndarray:
    from scorer.decode import decode_image

    return np.stack([decode_image(p.read_bytes()) for p in cover_files(n)])


def featurizer_path(precision: str):
    from scorer.model import Model

    return Model(precision=precision).cnn_path


def throughput(featurizer, pixels: np.ndarray, batch: int, reps: int) -> dict:
    chunks = [pixels[i:i + batch] for i in range(0, len(pixels), batch)]

    def run() -> None:
        for chunk in chunks:
            featurizer(chunk)

    return repeat(lambda: rate(len(pixels), run), reps)


def model_only(precisions: list[str], batches: list[int], reps: int, n_images: int) -> list[dict]:
    from scorer.featurize import OnnxFeaturizer
    from scorer.featurize.cnn import default_threads

    pixels = images(n_images)
    rows = []
    for precision in precisions:
        featurizer = OnnxFeaturizer(featurizer_path(precision))
        for batch in batches:
            rows.append({"precision": precision, "batch": batch, "threads": default_threads(),
                         "provider": featurizer.provider, "images": n_images,
                         "img_per_s": throughput(featurizer, pixels, batch, reps)})
    return rows


def tuning(precision: str, batch: int, reps: int, n_images: int) -> list[dict]:
    """The session options one at a time against scorer's choice (all optimisations). Since issue 26 the CPU
    featurizer runs one-thread sessions side by side (one slice of the batch per core), so "no spinning" has no
    pool to act on and reads as the default; IO binding runs the whole batch on one such session."""
    import onnxruntime as ort

    from scorer.featurize import OnnxFeaturizer

    pixels = images(n_images)
    path = featurizer_path(precision)
    variants = {
        "scorer default (ORT_ENABLE_ALL, spinning)": {},
        "no spinning": {"spinning": False},
        "ORT_ENABLE_BASIC": {"level": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC},
        "no memory arena": {"arena": False},
        "IO binding (preallocated output)": {"io_binding": True},
    }
    rows = []
    for name, v in variants.items():
        featurizer = OnnxFeaturizer(path, spinning=v.get("spinning", True))
        if "level" in v or "arena" in v:
            opts = featurizer.session.get_session_options()
            opts.graph_optimization_level = v.get("level", opts.graph_optimization_level)
            opts.enable_cpu_mem_arena = v.get("arena", True)
            featurizer.session = ort.InferenceSession(str(path), opts, providers=[featurizer.provider])
        fn = _io_bound(featurizer, batch) if v.get("io_binding") else featurizer
        rows.append({"variant": name, "precision": precision, "batch": batch,
                     "img_per_s": throughput(fn, pixels, batch, reps)})
    return rows


def _io_bound(featurizer, batch: int):
    """Run with IO binding: the output buffer is allocated once and reused."""
    session = featurizer.session
    out = np.empty((batch, featurizer.dim), np.float32)
    binding = session.io_binding()

    def run(chunk: np.ndarray) -> np.ndarray:
        target = out[:len(chunk)]
        binding.bind_cpu_input("images", np.ascontiguousarray(chunk))
        binding.bind_output("features", "cpu", 0, np.float32, list(target.shape), target.ctypes.data)
        session.run_with_iobinding(binding)
        return target

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", nargs="+", default=["fp32", "int8"])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--tuning", action="store_true", help="compare session options instead")
    args = ap.parse_args()
    if args.tuning:
        rows = [r for p in args.precision for r in tuning(p, 16, args.reps, args.images)]
    else:
        rows = model_only(args.precision, args.batch, args.reps, args.images)
    for row in rows:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
