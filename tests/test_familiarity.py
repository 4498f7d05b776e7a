"""Familiarity: how like the training covers a cover is, on the training covers' own scale."""

from __future__ import annotations

import numpy as np
import pytest

from scorer.heads.familiarity import Familiarity, leave_group_out_similarity


def _clusters(n_per: int = 60, dims: int = 64, seed: int = 0, centres: np.ndarray | None = None):
    """Features around a few centres, as CNN features of covers of a few styles; labels are the centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, dims)) * 3 if centres is None else centres
    x = np.concatenate([c + rng.normal(size=(n_per, dims)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(len(centres)), n_per), centres


def test_training_like_covers_are_spread_over_the_scale_and_strangers_are_at_its_bottom():
    x, _, centres = _clusters(n_per=400, dims=32)
    scale = Familiarity.fit(x, dims=8)
    like, _, _ = _clusters(n_per=40, dims=32, seed=1, centres=centres)  # new covers of the same styles
    f = scale(like)
    assert f.min() >= 0.0 and f.max() <= 1.0
    assert 0.3 < np.median(f) < 0.7  # a typical new cover of a known style: mid-scale
    rng = np.random.default_rng(2)
    strangers = rng.normal(size=(50, x.shape[1])).astype(np.float32) * 3  # a style the model never saw
    assert np.median(scale(strangers)) < 0.05
    assert scale(strangers).mean() < f.mean() - 0.3


def test_the_scale_is_monotone_in_similarity_and_survives_a_round_trip(tmp_path):
    x, _, _ = _clusters()
    scale = Familiarity.fit(x, dims=16)
    sims = np.linspace(-1, 1, 200)
    assert (np.diff(scale.scale(sims)) >= 0).all()
    assert scale.scale(np.array([scale.quantiles[0] - 0.1]))[0] == 0.0
    assert scale.scale(np.array([scale.quantiles[-1] + 0.1]))[0] == 1.0
    scale.save(tmp_path / "familiarity.npz")
    loaded = Familiarity.load(tmp_path / "familiarity.npz")
    q = np.random.default_rng(3).normal(size=(20, x.shape[1])).astype(np.float32)
    np.testing.assert_allclose(loaded(q), scale(q), atol=2e-3)  # embeddings are stored in float16


def test_a_training_cover_is_not_found_familiar_by_its_own_group():
    """Each training cover is measured against the covers of other groups: a cover with near-copies in its own
    group (re-issues of one album) is placed by how it relates to the rest, not by its copies."""
    x, _, _ = _clusters(n_per=40)
    rng = np.random.default_rng(4)
    copies = x[:1] + rng.normal(scale=0.01, size=(12, x.shape[1])).astype(np.float32)
    features = np.concatenate([x, copies])
    groups = ["album"] + [f"c{i}" for i in range(1, len(x))] + ["album"] * 12  # the original and its copies
    scale = Familiarity.fit(features, groups, dims=16)
    grouped = leave_group_out_similarity(scale.embeddings, groups)
    alone = leave_group_out_similarity(scale.embeddings, None)
    assert alone[len(x):].min() > 0.99  # each copy's nearest covers are its own copies
    # against the other groups, a copy is as familiar as the original is among the other covers
    others = leave_group_out_similarity(scale.embed(x), None)[0]
    np.testing.assert_allclose(grouped[len(x):], others, atol=0.02)
    assert grouped[0] == pytest.approx(others, abs=0.02)


def test_fit_needs_numpy_only_and_keeps_k_and_dims():
    x, _, _ = _clusters(n_per=10, dims=32)
    scale = Familiarity.fit(x, k=3, dims=8)
    assert scale.k == 3 and scale.components.shape == (32, 8) and scale.embeddings.shape == (50, 8)
    assert len(scale.quantiles) == 101
    with pytest.raises(ValueError):
        Familiarity.fit(np.zeros((0, 4), dtype=np.float32))
