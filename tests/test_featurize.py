"""Featurizers on real covers: the ONNX EfficientNet (1280-d) and the HSV colour histogram (512-d)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from scorer.decode import IMAGE_SIZE, decode_image
from scorer.featurize import ColourFeaturizer, OnnxFeaturizer
from scorer.featurize.colour import BINS
from scorer.model import shipped_featurizer


@pytest.fixture(scope="module")
def cnn() -> OnnxFeaturizer:
    return OnnxFeaturizer(shipped_featurizer())


@pytest.fixture(scope="module")
def cover_batch(sample_covers) -> np.ndarray:
    return np.stack([decode_image(p.read_bytes()) for p in sample_covers])


def solid(rgb: tuple[int, int, int], n: int = IMAGE_SIZE) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (n, n, 3)).copy()


# ---------------------------------------------------------------- CNN


def test_cnn_graph_has_the_documented_inputs_and_outputs(cnn):
    (inp,) = cnn.session.get_inputs()
    assert inp.name == "images"
    assert inp.type == "tensor(uint8)"
    assert list(inp.shape[1:]) == [IMAGE_SIZE, IMAGE_SIZE, 3]
    outputs = {o.name: o.shape for o in cnn.session.get_outputs()}
    assert outputs["features"][1] == 1280
    assert outputs["logits"][1] == 1000
    assert cnn.dim == 1280
    assert cnn.kind == "cnn"
    assert cnn.id.startswith("efficientnet-lite0")


@pytest.mark.shared_data
def test_cnn_features_on_real_covers(cnn, cover_batch):
    feats = cnn(cover_batch)
    assert feats.shape == (len(cover_batch), 1280)
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all()
    # pooled after a ReLU6-style activation: non-negative (up to float error), not all zero
    assert feats.min() > -1.0
    assert (np.abs(feats).sum(axis=1) > 0).all()
    # deterministic
    np.testing.assert_array_equal(feats, cnn(cover_batch))
    # different covers give different features: no two rows (near-)identical
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -1)
    assert sims.max() < 0.999


@pytest.mark.shared_data
def test_cnn_features_do_not_depend_on_the_batch(cnn, cover_batch):
    batch = cover_batch[:8]
    together = cnn(batch)
    one_by_one = np.concatenate([cnn(batch[i : i + 1]) for i in range(len(batch))])
    assert np.abs(together - one_by_one).max() < 1e-4
    # and on the position in the batch
    reversed_ = cnn(batch[::-1])[::-1]
    assert np.abs(together - reversed_).max() < 1e-4


@pytest.mark.shared_data
def test_cnn_logits_are_imagenet_scores(cnn, cover_batch):
    features, logits = cnn.session.run(["features", "logits"], {"images": cover_batch[:4]})
    assert logits.shape == (4, 1000)
    assert np.isfinite(logits).all()
    np.testing.assert_allclose(features, cnn(cover_batch[:4]), atol=1e-5)
    assert (logits.std(axis=1) > 0).all()


@pytest.mark.shared_data
def test_cnn_is_sensitive_to_picture_content(cnn, cover_batch):
    img = cover_batch[:1]
    flipped = img[:, :, ::-1].copy()
    gray = np.repeat(img.mean(axis=3, keepdims=True).astype(np.uint8), 3, axis=3)
    a, b, c = cnn(img), cnn(flipped), cnn(gray)
    # a mirror image is still the same picture: features far closer than to another cover
    other = cnn(cover_batch[20:21])

    def cos(u, v):
        return float((u @ v.T).item() / (np.linalg.norm(u) * np.linalg.norm(v)))

    assert cos(a, b) > cos(a, other)
    assert not np.allclose(a, c, atol=1e-3)


# ---------------------------------------------------------------- colour histogram


def hist_bin(rgb: tuple[int, int, int]) -> int:
    """Bin index of a colour, from OpenCV's own HSV value (hue 0..179, saturation/value 0..255)."""
    h, s, v = cv2.cvtColor(solid(rgb, 1), cv2.COLOR_RGB2HSV)[0, 0].astype(int)
    hb, sb, vb = h * BINS[0] // 180, s * BINS[1] // 256, v * BINS[2] // 256
    return (hb * BINS[1] + sb) * BINS[2] + vb


def test_colour_histogram_shape_and_normalisation():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    hist = ColourFeaturizer()(images)
    assert hist.shape == (3, 512)
    assert ColourFeaturizer.dim == 512
    assert hist.dtype == np.float32
    assert (hist >= 0).all()
    np.testing.assert_allclose(hist.sum(axis=1), 1.0, atol=1e-5)
    assert (hist > 0).sum(axis=1).min() > 100  # noise spreads over many bins


@pytest.mark.shared_data
def test_colour_histogram_on_real_covers(cover_batch):
    hist = ColourFeaturizer()(cover_batch)
    assert hist.shape == (len(cover_batch), 512)
    np.testing.assert_allclose(hist.sum(axis=1), 1.0, atol=1e-5)
    assert len({row.tobytes() for row in hist}) == len(hist)


def test_opencv_hue_range_is_0_to_179():
    """The histogram's hue range [0, 180) is only right because OpenCV halves the hue."""
    assert cv2.cvtColor(solid((0, 0, 255), 1), cv2.COLOR_RGB2HSV)[0, 0, 0] == 120  # blue: 240° / 2
    assert cv2.cvtColor(solid((0, 255, 0), 1), cv2.COLOR_RGB2HSV)[0, 0, 0] == 60  # green: 120° / 2


@pytest.mark.parametrize("rgb", [(255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 0), (128, 0, 255),
                                 (255, 255, 255), (0, 0, 0), (40, 90, 200)])
def test_solid_colour_puts_all_mass_in_its_bin(rgb):
    hist = ColourFeaturizer()(solid(rgb)[None])[0]
    expected = hist_bin(rgb)
    assert hist[expected] == pytest.approx(1.0)
    assert np.count_nonzero(hist) == 1


def test_red_and_blue_land_in_different_hue_bins():
    red, blue = ColourFeaturizer()(np.stack([solid((255, 0, 0)), solid((0, 0, 255))]))
    r, b = int(red.argmax()), int(blue.argmax())
    assert r != b
    # full saturation and value: only the hue differs. Red is hue bin 0; blue (OpenCV hue 120) is
    # hue bin 120 * 8 // 180 = 5 (it would be 3 if the hue range were taken as 0..255).
    assert r == (0 * 8 + 7) * 8 + 7
    assert b == (5 * 8 + 7) * 8 + 7


def test_half_and_half_image_splits_the_mass():
    img = solid((255, 0, 0))
    img[:, IMAGE_SIZE // 2 :] = (0, 0, 255)
    hist = ColourFeaturizer()(img[None])[0]
    assert hist[hist_bin((255, 0, 0))] == pytest.approx(0.5)
    assert hist[hist_bin((0, 0, 255))] == pytest.approx(0.5)
