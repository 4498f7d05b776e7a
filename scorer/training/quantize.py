"""Quantize the ONNX featurizer to int8 (static QDQ, calibrated on real covers); needs the `export` extra.

    python -m scorer.training.quantize [--data ../shared/data/covers-5genre] [--calibration 300]

Activations are calibrated on a seeded sample of covers spread evenly over the genres (only
pixel statistics are used, never labels). Weights are int8 per output channel, activations
uint8, with weights on a 7-bit range (``reduce_range``): CPUs with AVX2 but without VNNI multiply
uint8 by int8 in 16-bit pairs that saturate at full range (feature cosine to fp32 0.91 there, 0.99
where VNNI is); at 7 bits the pairs cannot saturate (0.96 on AVX2). The uint8-in
preprocessing head and the float outputs stay as they are. The result is
checked against the fp32 graph on held-back covers (cosine similarity of the features, top-1
agreement of the ImageNet logits) and described in a ``.json`` beside it, like the fp32 file.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import numpy as np

from scorer.training.dataset import sha256_file

REPO = Path(__file__).resolve().parents[2]  # the repository: scorer/training/quantize.py
FP32 = REPO / "models" / "featurizer" / "efficientnet-lite0.onnx"
#: What gets quantized. Clip (ReLU6) must be in: its output range, not the raw convolution's, sets the
#: scale. Pooling and the ImageNet classifier stay float, so the features keep full precision.
OP_TYPES = ("Conv", "Clip", "Add", "Pad")


def sample_covers(data: Path, n: int, seed: int = 0, skip: int = 0) -> list[Path]:
    """``n`` covers taken round-robin over genre folders, in a seeded order (``skip`` per genre first)."""
    by_genre = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
        random.Random(f"{seed}-{folder.name}").shuffle(files)
        by_genre.append(files[skip:])
    out: list[Path] = []
    for i in range(max(len(f) for f in by_genre)):
        out += [files[i] for files in by_genre if i < len(files)]
    return out[:n]


def load_batch(paths: list[Path]) -> np.ndarray:
    from scorer.decode import decode_image

    return np.stack([decode_image(p.read_bytes()) for p in paths])


def quantize(fp32: Path, out: Path, calibration: np.ndarray, batch_size: int = 16) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([calibration[i:i + batch_size] for i in range(0, len(calibration), batch_size)])

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch}

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=False)
        staged = out.with_suffix(".onnx.tmp")
        quantize_static(str(prepared), str(staged), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=True, calibrate_method=CalibrationMethod.MinMax,
                        op_types_to_quantize=list(OP_TYPES),
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        staged.replace(out)


def compare(fp32: Path, int8: Path, batch: np.ndarray, logits: str = "imagenet") -> dict:
    import onnxruntime as ort

    outs = []
    for path in (fp32, int8):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {"images": batch}))
    (f32, l32), (f8, l8) = outs
    cos = (f32 * f8).sum(1) / (np.linalg.norm(f32, axis=1) * np.linalg.norm(f8, axis=1))
    return {"images": int(len(batch)), "feature_cosine_mean": round(float(cos.mean()), 4),
            "feature_cosine_min": round(float(cos.min()), 4),
            f"{logits}_top1_agreement": round(float((l32.argmax(1) == l8.argmax(1)).mean()), 4)}


def int8_path(fp32: Path) -> Path:
    """Where the int8 twin of ``x.onnx`` lives: ``x-int8.onnx`` beside it."""
    return fp32.with_name(f"{fp32.stem}-int8.onnx")


def quantize_beside(fp32: Path, calibration: np.ndarray, check: np.ndarray, source: str) -> Path:
    """Write ``<stem>-int8.onnx`` and its ``.json`` beside an exported fp32 featurizer, checked on ``check``."""
    out = int8_path(fp32)
    quantize(fp32, out, calibration)
    fp32_meta = json.loads(fp32.with_suffix(".json").read_text())
    logits = "genre" if "finetuning" in fp32_meta else "imagenet"
    sha = sha256_file(out)
    meta = {
        **{k: fp32_meta[k] for k in ("arch", "weights", "genres", "input", "outputs", "preprocessing", "finetuning")
           if k in fp32_meta},
        "id": f"{fp32_meta['id'].rsplit('-', 1)[0]}-int8-{sha[:12]}",
        "file": out.name,
        "sha256": sha,
        "precision": "int8",
        "quantization": {"method": "onnxruntime static QDQ", "activations": "uint8 asymmetric",
                         "weights": "int8 symmetric per channel, 7-bit range", "calibration": "MinMax",
                         "calibration_covers": len(calibration), "calibration_source": source,
                         "op_types": list(OP_TYPES), "from": {"file": fp32.name, "sha256": fp32_meta["sha256"]}},
        "quantization_check": compare(fp32, out, check, logits),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "covers-5genre")
    ap.add_argument("--fp32", type=Path, default=FP32)
    ap.add_argument("--calibration", type=int, default=300, help="covers used to calibrate activations")
    ap.add_argument("--check", type=int, default=100, help="other covers used to compare fp32 and int8")
    args = ap.parse_args()
    calib = sample_covers(args.data, args.calibration)
    check = [p for p in sample_covers(args.data, args.calibration + args.check) if p not in set(calib)]
    out = quantize_beside(args.fp32, load_batch(calib), load_batch(check), args.data.name)
    check_result = json.loads(out.with_suffix(".json").read_text())["quantization_check"]
    print(json.dumps({"file": str(out), "bytes": out.stat().st_size, **check_result}))


if __name__ == "__main__":
    main()
