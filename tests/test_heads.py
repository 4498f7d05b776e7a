"""Heads (kNN, XGBoost → ONNX, MLP in numpy, ensemble) on synthetic but learnable feature matrices."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from scorer.heads import EnsembleHead, KnnHead, MlpHead, OnnxHead, load_head
from scorer.training.heads import HEAD_KINDS, fit_head

DIM = 40


def blobs(n_classes: int, n_per_class: int, seed: int, dim: int = DIM, spread: float = 1.0):
    """Gaussian blobs around fixed class centres (centres depend only on n_classes, noise on seed)."""
    centres = np.random.default_rng(1000 + n_classes).normal(0.0, 1.0, (n_classes, dim))
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + spread * rng.normal(0.0, 1.0, (n_per_class, dim)) for c in centres])
    y = np.repeat(np.arange(n_classes), n_per_class)
    order = rng.permutation(len(y))
    return x[order].astype(np.float32), y[order]


@pytest.fixture(autouse=True)
def one_core():
    """Fit on one core: with OpenMP/BLAS threads spinning, xgboost and sklearn crawl (up to 100x slower)
    on a shared, busy 2-core machine.

    fit_head reads the core count from the CPU affinity, so this is how a user limits it too.
    """
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        os.sched_setaffinity(0, before)


def check_proba(p: np.ndarray, n: int, n_classes: int) -> None:
    assert p.shape == (n, n_classes)
    assert np.isfinite(p).all()
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- every kind learns


CASES = [pytest.param(kind, n, id=f"{kind}-{n}") for kind in HEAD_KINDS for n in (5, 2)]


@pytest.mark.parametrize(("kind", "n_classes"), CASES)
def test_fit_head_learns_and_saves(kind, n_classes, tmp_path):
    x, y = blobs(n_classes, 40, seed=1)
    xt, yt = blobs(n_classes, 30, seed=2)
    fitted = fit_head(kind, "cnn", x, y, n_classes, seed=0)
    p = fitted.predict_proba(xt)
    check_proba(p, len(yt), n_classes)
    accuracy = float((p.argmax(axis=1) == yt).mean())
    assert accuracy > 1.0 / n_classes + 0.4, accuracy  # chance is 1 / n_classes
    # the shipped file gives the same probabilities as the in-memory head
    path = tmp_path / f"head{fitted.suffix}"
    fitted.save(path)
    loaded = load_head("h", "cnn", path)
    assert loaded.featurizer == "cnn"
    tol = 2e-3 if kind == "knn" else 1e-5  # kNN stores float16 embeddings
    assert np.abs(loaded.predict_proba(xt) - p).max() < tol


def test_unknown_head_kind_is_refused():
    x, y = blobs(3, 5, seed=0)
    with pytest.raises(ValueError, match="unknown head kind"):
        fit_head("svm", "cnn", x, y, 3)


# ---------------------------------------------------------------- XGBoost as ONNX


def test_xgboost_onnx_matches_xgboost(tmp_path):
    x, y = blobs(5, 40, seed=3, spread=2.0)  # overlapping blobs: probabilities well inside (0, 1)
    xt, _ = blobs(5, 20, seed=4, spread=2.0)
    fitted = fit_head("xgboost", "cnn", x, y, 5, seed=0)
    assert fitted.suffix == ".onnx"
    path = tmp_path / "cnn-xgboost.onnx"
    fitted.save(path)
    assert path.read_bytes()[:2] != b"PK"  # an ONNX protobuf, not an npz archive
    head = load_head("cnn-xgboost", "cnn", path)
    assert isinstance(head, OnnxHead)
    expected = fitted.model.predict_proba(xt)
    got = head.predict_proba(xt)
    check_proba(got, len(xt), 5)
    assert 0.05 < float(expected.max(axis=1).mean()) < 0.999  # not saturated: the comparison means something
    assert np.abs(got - expected).max() < 1e-5


# ---------------------------------------------------------------- MLP


def test_mlp_save_load_is_exact(tmp_path):
    x, y = blobs(5, 30, seed=5)
    fitted = fit_head("mlp", "colour", x, y, 5, seed=0)
    assert isinstance(fitted.model, MlpHead)
    path = tmp_path / "colour-mlp.npz"
    fitted.save(path)
    loaded = load_head("colour-mlp", "colour", path)
    assert isinstance(loaded, MlpHead)
    xt, _ = blobs(5, 10, seed=6)
    np.testing.assert_array_equal(loaded.predict_proba(xt), fitted.model.predict_proba(xt))


def _sklearn_mlp(x, y, seed=0):
    """Fitted the way scorer/training/heads.py fits its MLP (standardise, one hidden layer of 256)."""
    scaler = StandardScaler().fit(x)
    clf = MLPClassifier(hidden_layer_sizes=(256,), alpha=1.0, max_iter=200, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # converged or not, the maths must agree
        clf.fit(scaler.transform(x), y)
    return scaler, clf


def test_numpy_mlp_equals_sklearn_multiclass():
    x, y = blobs(5, 30, seed=7, spread=2.5)
    scaler, clf = _sklearn_mlp(x, y)
    (w1, w2), (b1, b2) = clf.coefs_, clf.intercepts_
    head = MlpHead("m", "cnn", scaler.mean_, scaler.scale_, w1, b1, w2, b2)
    xt, _ = blobs(5, 20, seed=8, spread=2.5)
    expected = clf.predict_proba(scaler.transform(xt))
    got = head.predict_proba(xt)
    check_proba(got, len(xt), 5)
    assert np.abs(got - expected).max() < 1e-5


def test_numpy_mlp_equals_sklearn_binary():
    """sklearn keeps a single logistic unit for two classes; softmax over (0, z) is that sigmoid."""
    x, y = blobs(2, 40, seed=9, spread=2.5)
    scaler, clf = _sklearn_mlp(x, y)
    (w1, w2), (b1, b2) = clf.coefs_, clf.intercepts_
    assert w2.shape == (256, 1)
    head = MlpHead("m", "cnn", scaler.mean_, scaler.scale_, w1, b1,
                   np.hstack([np.zeros_like(w2), w2]), np.hstack([np.zeros_like(b2), b2]))
    xt, _ = blobs(2, 20, seed=10, spread=2.5)
    expected = clf.predict_proba(scaler.transform(xt))
    assert np.abs(head.predict_proba(xt) - expected).max() < 1e-5


def test_mlp_softmax_is_stable_for_huge_logits():
    w2 = np.array([[1000.0, 0.0, -1000.0]], np.float32)
    head = MlpHead("m", "cnn", np.zeros(1), np.ones(1), np.ones((1, 1)), np.zeros(1), w2, np.zeros(3))
    p = head.predict_proba(np.array([[5.0], [0.0]], np.float32))
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(p[1], [1 / 3, 1 / 3, 1 / 3], atol=1e-6)


def test_mlp_handles_constant_features():
    """A feature that never varies (scale 0) must not turn into NaN."""
    x, y = blobs(3, 30, seed=11)
    x[:, 0] = 7.0
    fitted = fit_head("mlp", "cnn", x, y, 3, seed=0)
    check_proba(fitted.predict_proba(x), len(x), 3)


# ---------------------------------------------------------------- kNN


def test_knn_k1_identical_query_gets_its_own_label():
    x, y = blobs(5, 10, seed=12)
    head = KnnHead("k", "cnn", x, y, n_classes=5, k=1)
    p = head.predict_proba(x)
    check_proba(p, len(x), 5)
    np.testing.assert_array_equal(p[np.arange(len(y)), y], 1.0)


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_knn_weighted_vote_by_hand():
    # references on the unit circle (kNN uses cosine similarity, so the lengths must not matter)
    refs = np.array([_unit(0), [2 * v for v in _unit(30)], _unit(60), _unit(120), _unit(200)], np.float32)
    labels = np.array([0, 1, 1, 2, 2])
    query = np.array([[3 * v for v in _unit(10)]], np.float32)
    # cosine similarity is the cosine of the angle between them: 10°, 20°, 50°, 110°, 190°
    s0, s1, s2 = math.cos(math.radians(10)), math.cos(math.radians(20)), math.cos(math.radians(50))
    total = s0 + s1 + s2  # the three nearest: refs 0, 1, 2
    expected = [s0 / total, (s1 + s2) / total, 0.0]

    weighted = KnnHead("k", "cnn", refs, labels, n_classes=3, k=3, weighted=True).predict_proba(query)
    np.testing.assert_allclose(weighted[0], expected, atol=1e-6)
    plain = KnnHead("k", "cnn", refs, labels, n_classes=3, k=3, weighted=False).predict_proba(query)
    np.testing.assert_allclose(plain[0], [1 / 3, 2 / 3, 0.0], atol=1e-6)


def test_knn_k_larger_than_the_training_set():
    refs = np.eye(3, dtype=np.float32)
    head = KnnHead("k", "cnn", refs, np.array([0, 1, 1]), n_classes=2, k=10, weighted=False)
    assert head.k == 3
    np.testing.assert_allclose(head.predict_proba(np.ones((1, 3), np.float32))[0], [1 / 3, 2 / 3], atol=1e-6)


def test_knn_save_load_roundtrip(tmp_path):
    x, y = blobs(4, 15, seed=13)
    head = KnnHead("k", "colour", x, y, n_classes=4, k=5)
    head.save(tmp_path / "knn.npz")
    loaded = load_head("k", "colour", tmp_path / "knn.npz")
    assert isinstance(loaded, KnnHead)
    assert (loaded.k, loaded.n_classes, loaded.weighted) == (5, 4, True)
    np.testing.assert_array_equal(loaded.labels, y)
    xt, _ = blobs(4, 10, seed=14)
    assert np.abs(loaded.predict_proba(xt) - head.predict_proba(xt)).max() < 2e-3


def test_load_head_refuses_unknown_kind(tmp_path):
    path = tmp_path / "odd.npz"
    np.savez(path, kind="svm")
    with pytest.raises(ValueError, match="unknown head kind"):
        load_head("odd", "cnn", Path(path))


# ---------------------------------------------------------------- ensemble


def test_ensemble_is_the_mean_of_its_members():
    x_cnn, y = blobs(3, 30, seed=15)
    x_col = np.abs(blobs(3, 30, seed=15, dim=12)[0])  # a second feature space, different width
    cnn_knn = fit_head("knn", "cnn", x_cnn, y, 3).model
    cnn_mlp = fit_head("mlp", "cnn", x_cnn, y, 3).model
    col_knn = KnnHead("colour-knn", "colour", x_col, y, n_classes=3, k=7)
    ensemble = EnsembleHead([cnn_knn, cnn_mlp, col_knn])

    q_cnn, _ = blobs(3, 5, seed=16)
    q_col = np.abs(blobs(3, 5, seed=16, dim=12)[0])
    members = [cnn_knn.predict_proba(q_cnn), cnn_mlp.predict_proba(q_cnn), col_knn.predict_proba(q_col)]
    expected = (members[0] + members[1] + members[2]) / 3
    got = ensemble.predict_proba_from({"cnn": q_cnn, "colour": q_col})
    check_proba(got, len(q_cnn), 3)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(members[0], members[1])  # the members really differ
