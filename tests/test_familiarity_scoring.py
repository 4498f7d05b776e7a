"""The familiarity column at scoring time, and the calibration that grows with unfamiliarity, on the shipped model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import scorer
from scorer.cli.demo import draw_covers
from scorer.decode import decode_image
from scorer.model import Model, default_model_dir


@pytest.fixture(scope="module")
def model() -> Model:
    return Model()


def test_the_shipped_model_has_a_familiarity_scale_and_a_calibration_that_uses_it(model):
    spec = model.manifest["familiarity"]
    assert (model.dir / spec["file"]).is_file() and "share of the training covers" in spec["scale"]
    assert model.familiarity is not None and len(model.familiarity.quantiles) == 101
    cal = model.calibration(model.default_head)
    assert cal.temperature > 0 and cal.slope >= 0


def test_drawn_shapes_are_less_familiar_than_training_covers_and_the_column_calibrates(model, sample_covers, tmp_path):
    drawn = draw_covers(tmp_path / "drawn", 16)
    real = sample_covers[:16]
    scored = scorer.score([*map(str, real), *map(str, drawn)], model=model)
    assert (scored["status"] == "ok").all()
    fam = scored["familiarity"].to_numpy()
    assert ((fam >= 0) & (fam <= 1)).all()
    # training covers against coloured shapes (the shipped model: medians about 0.90 and 0.73; familiarity is
    # weak at telling pictures that are not covers, see the README, but it does rank them below the covers)
    assert np.median(fam[16:]) < np.median(fam[:16])
    # the column is the model's familiarity of the covers' features, and the probabilities are calibrated with it
    images = np.stack([decode_image(p.read_bytes()) for p in [*real, *drawn]])
    head = model.head()
    proba, familiarity = model.predict_with_familiarity(images, head)
    np.testing.assert_allclose(familiarity, fam, atol=1e-5)
    np.testing.assert_allclose(proba.max(axis=1), scored["genre_prob"].to_numpy(), atol=1e-5)
    raw = model.predict(images, model.head(calibrated=False))
    cal = model.calibration(model.default_head)
    np.testing.assert_allclose(cal.apply(raw, familiarity), proba, atol=1e-5)


def test_a_model_without_a_familiarity_scale_scores_with_a_null_column(tmp_path, sample_covers):
    old = tmp_path / "old-model"
    shutil.copytree(default_model_dir(), old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["familiarity"]
    for spec in manifest["calibration"]["heads"].values():
        spec.pop("slope", None)  # a model from before: plain temperatures
    (old / "manifest.json").write_text(json.dumps(manifest))
    scored = scorer.score([str(p) for p in sample_covers[:4]], model=str(old))
    assert (scored["status"] == "ok").all() and scored["familiarity"].isna().all()
    assert scored["genre_prob"].between(0, 1).all()
