"""The committed ONNX featurizer is the pretrained EfficientNet-Lite0, exported faithfully."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from scorer.decode import decode_image
from scorer.featurize import OnnxFeaturizer
from scorer.model import shipped_featurizer


def test_committed_featurizer_matches_its_metadata():
    onnx_path = shipped_featurizer()
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    assert hashlib.sha256(onnx_path.read_bytes()).hexdigest() == meta["sha256"]
    assert meta["outputs"] == {"features": 1280, "logits": 1000}
    assert meta["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert meta["export_check"]["max_abs_diff_features"] < 1e-3


def test_committed_onnx_matches_torch_on_real_covers(sample_covers):
    import torch

    from scorer.training.export_featurizer import load_torch_model, wrap

    batch = np.stack([decode_image(p.read_bytes()) for p in sample_covers[::4]])
    model, _ = load_torch_model("lite0")
    with torch.no_grad():
        t_feat, t_logits = (t.numpy() for t in wrap(model)(torch.from_numpy(batch)))
    featurizer = OnnxFeaturizer(shipped_featurizer(), threads=2)
    o_feat, o_logits = featurizer.session.run(None, {"images": batch})
    assert np.abs(t_feat - o_feat).max() < 1e-3
    assert np.abs(t_logits - o_logits).max() < 1e-3
    # the features carry information: covers are not all mapped to the same vector
    assert np.linalg.norm(o_feat - o_feat.mean(0), axis=1).min() > 1.0


def test_export_script_writes_a_checked_graph(tmp_path, sample_covers):
    from scorer.training.export_featurizer import export

    meta = export(tmp_path, "lite0", sample_covers[:4])
    assert (tmp_path / "efficientnet-lite0.onnx").exists()
    assert meta["export_check"]["images"] == 4
    assert meta["export_check"]["max_abs_diff_features"] < 1e-3
    # dynamic batch axis: batch sizes 1 and 3 both run
    f = OnnxFeaturizer(tmp_path / "efficientnet-lite0.onnx", threads=2)
    for n in (1, 3):
        assert f(np.zeros((n, 224, 224, 3), np.uint8)).shape == (n, 1280)


def test_lite_keeps_relu6(sample_covers):
    """EfficientNet-Lite is trained with ReLU6; an export that swaps in swish still runs, but on the
    wrong network. Three symptoms of the right one: Clip nodes and no Sigmoid in the graph, pooled
    features inside ReLU6's [0, 6], and ImageNet classes that fit album covers."""
    import onnx

    ops = {n.op_type for n in onnx.load(str(shipped_featurizer())).graph.node}
    assert "Clip" in ops and "Sigmoid" not in ops
    batch = np.stack([decode_image(p.read_bytes()) for p in sample_covers])
    features, logits = OnnxFeaturizer(shipped_featurizer()).session.run(None, {"images": batch})
    assert features.min() >= 0.0 and features.max() <= 6.0
    # ImageNet's comic book (917), web site (916) and book jacket (921) are what covers look like:
    # the swish export had them in the top 5 for about 5% of covers, the right network for about 65%
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert np.isin(top5, [916, 917, 921]).any(axis=1).mean() > 0.3
