"""The int8 featurizer: how it is made, how close it stays to fp32, and how a run picks a precision."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from scorer.cli import app
from scorer.decode import decode_image
from scorer.featurize import OnnxFeaturizer
from scorer.featurize.cnn import CPU, PREFERRED_BATCH, available_providers
from scorer.model import Model, shipped_featurizer
from scorer.training.evaluate import cross_validate
from scorer.training.pipeline import INT8_TOLERANCE, choose_precision, int8_beside


@pytest.fixture(scope="module")
def batch(sample_covers) -> np.ndarray:
    return np.stack([decode_image(p.read_bytes()) for p in sample_covers])


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.shared_data
def test_int8_features_stay_close_to_fp32_on_real_covers(batch):
    fp32 = OnnxFeaturizer(shipped_featurizer())
    int8 = OnnxFeaturizer(int8_beside(shipped_featurizer()))
    assert int8.precision == "int8" and fp32.precision == "fp32"
    sims = cosine(fp32(batch), int8(batch))
    # 7-bit weights (reduce_range) keep these figures the same on CPUs with and without VNNI; full-range
    # weights gave 0.99 with VNNI and 0.91 (saturated) on AVX2 without it
    assert sims.mean() > 0.95 and sims.min() > 0.8
    # the recorded check and provenance describe this very file
    meta = int8.meta
    assert meta["quantization"]["from"]["sha256"] == fp32.meta["sha256"]
    assert meta["quantization_check"]["feature_cosine_mean"] > 0.95


def test_int8_graph_runs_integer_kernels(tmp_path):
    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(int8_beside(shipped_featurizer())), opts, providers=[CPU])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert ops.count("QLinearConv") == 49  # every convolution of EfficientNet-Lite0
    assert "Conv" not in ops and "Clip" not in ops  # ReLU6 folded into the quantized range


@pytest.mark.shared_data
def test_quantize_from_scratch(tmp_path, sample_covers, batch):
    from scorer.training.quantize import compare, load_batch, quantize

    out = tmp_path / "small-int8.onnx"
    quantize(shipped_featurizer(), out, load_batch(sample_covers[::2]))
    check = compare(shipped_featurizer(), out, batch[1::2])
    assert check["images"] == len(batch[1::2])
    # a bound on quality, as in test_int8_features_stay_close_to_fp32_on_real_covers (the mean there: 0.95 up)
    assert check["feature_cosine_mean"] > 0.95
    # int8 weights take a quarter of fp32's bytes; the graph's structure, biases and scales do not shrink
    assert out.stat().st_size < shipped_featurizer().stat().st_size / 1.5


def test_shipped_model_records_both_precisions_and_the_rule():
    model = Model()
    cnn = model.manifest["featurizers"]["cnn"]
    assert set(model.variants) == {"fp32", "int8"}
    changes = {n: v["change"] for n, v in cnn["variants"]["int8"]["cv"].items()}
    assert set(changes) == set(model.head_names)
    expected = "int8" if min(changes.values()) >= -INT8_TOLERANCE else "fp32"
    assert cnn["default_precision"] == expected == model.precision
    assert model.version.endswith(f"+{expected}")
    for precision in ("fp32", "int8"):
        m = Model(precision=precision)
        assert m.cnn.precision == precision and m.cnn_path.exists()
        assert m.version == f"{model.manifest['version']}+{precision}"
    with pytest.raises(ValueError, match="fp16"):
        Model(precision="fp16")


def test_choose_precision():
    def cv(*changes: float) -> dict:
        return {"variants": {"int8": {"balanced_accuracy_change": {f"h{i}": c for i, c in enumerate(changes)}}}}

    assert choose_precision(cv(0.004, -0.01, 0.02)) == "int8"
    assert choose_precision(cv(0.004, -0.0101)) == "fp32"
    assert choose_precision(None) == "fp32"
    assert choose_precision({"heads": {}}) == "fp32"


def test_cross_validate_scores_variants_with_the_same_heads():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    x = rng.normal(size=(90, 8)).astype(np.float32) + 4 * np.eye(8, dtype=np.float32)[y]  # a direction per genre
    genres = ["a", "b", "c"]
    pure_noise = rng.normal(size=x.shape).astype(np.float32)
    cv = cross_validate({"cnn": x}, y, genres, folds=3, heads=("knn",),
                        variants={"same": {"cnn": x.copy()}, "noise": {"cnn": pure_noise}})
    same, noise = cv["variants"]["same"]["heads"], cv["variants"]["noise"]["heads"]
    assert same["cnn-knn"]["confusion_matrix"] == cv["heads"]["cnn-knn"]["confusion_matrix"]
    # the variants are scored on the same folds with the same heads: a second run gives the same figures
    again = cross_validate({"cnn": x}, y, genres, folds=3, heads=("knn",), variants={"noise": {"cnn": pure_noise}})
    assert again["variants"]["noise"]["heads"]["cnn-knn"] == noise["cnn-knn"]
    # bounds, with why: the genres' means are 4 * sqrt(2) standard deviations apart (a pair's Bayes error 0.2%),
    # so kNN on 60 training covers is right far above 0.8; noise has no genre in it: chance is 1/3, and 0.6 is
    # over five standard deviations of a 90-cover balanced accuracy (0.05) above it
    assert cv["heads"]["cnn-knn"]["balanced_accuracy"] > 0.8
    assert noise["cnn-knn"]["balanced_accuracy"] < 0.6


def test_cpu_provider_and_batch_size(monkeypatch):
    monkeypatch.setenv("SCORER_DEVICE", "cpu")
    assert available_providers() == [CPU]
    f = OnnxFeaturizer(shipped_featurizer(), threads=1)
    assert f.provider == CPU and f.device == "cpu"
    assert f.preferred_batch == PREFERRED_BATCH[CPU]
    assert f.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"


@pytest.mark.shared_data
def test_precision_option_end_to_end(sample_covers, tmp_path):
    src = tmp_path / "covers.csv"
    with open(src, "w", newline="") as f:
        csv.writer(f).writerows([["cover_url"], *([str(p)] for p in sample_covers[:6])])
    runs = {}
    for precision in ("fp32", "int8"):
        out = tmp_path / f"{precision}.parquet"
        r = CliRunner().invoke(app, ["catalog", str(src), "--out", str(out), "--precision", precision,
                                     "--head", "cnn-mlp", "--no-cache", "--json"])
        assert r.exit_code == 0, r.output
        runs[precision] = pq.read_table(out).to_pandas()
        meta = json.loads(pq.read_schema(out).metadata[b"scorer"])
        assert meta["precision"] == precision
        assert meta["featurizer_id"] == Model(precision=precision).variants[precision]["id"]
        assert (runs[precision].model_version == f"{Model().manifest['version']}+{precision}").all()
        assert (runs[precision].status == "ok").all()
    # each precision's output is its own network's: the model objects' calibrated cnn-mlp probabilities for the
    # same decoded covers (to float32 rounding), and the two precisions differ
    images = np.stack([decode_image(p.read_bytes()) for p in sample_covers[:6]])
    probs = {}
    for precision in ("fp32", "int8"):
        model = Model(precision=precision)
        probs[precision] = runs[precision][[f"p_{g}" for g in model.genres]].to_numpy()
        np.testing.assert_allclose(probs[precision], model.predict(images, model.head("cnn-mlp")), atol=1e-5,
                                   err_msg=precision)
    assert not np.allclose(probs["fp32"], probs["int8"], atol=1e-3)

    bad = CliRunner().invoke(app, ["catalog", str(src), "--out", str(tmp_path / "x.parquet"), "--precision", "fp16"])
    assert bad.exit_code == 2 and "fp32, int8" in bad.output
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.shared_data
def test_tta_option_end_to_end(sample_covers, tmp_path):
    """--tta flip runs the network on each cover and its mirror image; the output records it."""
    src = tmp_path / "covers.csv"
    with open(src, "w", newline="") as f:
        csv.writer(f).writerows([["cover_url"], *([str(p)] for p in sample_covers[:4])])
    shipped = Model()
    runs = {}
    for tta in ("none", "flip"):
        out = tmp_path / f"{tta}.parquet"
        r = CliRunner().invoke(app, ["catalog", str(src), "--out", str(out), "--tta", tta, "--no-cache"])
        assert r.exit_code == 0, r.output
        runs[tta] = pq.read_table(out).to_pandas()
        meta = json.loads(pq.read_schema(out).metadata[b"scorer"])
        assert meta["tta"] == tta
        suffix = "+flip" if tta == "flip" else ""
        assert (runs[tta].model_version == f"{shipped.manifest['version']}+{shipped.precision}{suffix}").all()
        assert (runs[tta].status == "ok").all()
    # each run is the model's own at that TTA; flip's features are the mean of the cover's and its mirror's
    images = np.stack([decode_image(p.read_bytes()) for p in sample_covers[:4]])
    probs = {}
    for tta in ("none", "flip"):
        model = Model(tta=tta)
        probs[tta] = runs[tta][[f"p_{g}" for g in model.genres]].to_numpy()
        np.testing.assert_allclose(probs[tta], model.predict(images, model.head()), atol=1e-5, err_msg=tta)
    plain, flip = Model(tta="none").cnn, Model(tta="flip").cnn
    mirrored = np.ascontiguousarray(images[:, :, ::-1])
    np.testing.assert_allclose(flip(images), (plain(images) + plain(mirrored)) / 2, atol=1e-5)
    assert not np.allclose(probs["none"], probs["flip"], atol=1e-3)

    bad = CliRunner().invoke(app, ["catalog", str(src), "--out", str(tmp_path / "x.parquet"), "--tta", "rotate"])
    assert bad.exit_code == 2 and "--tta rotate: use one of none, flip" in bad.output
    assert not (tmp_path / "x.parquet").exists()
