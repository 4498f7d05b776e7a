"""Calibration: the ECE and reliability figures, temperature fitting, the honest (cross-fitted)
after-figures, and calibrated heads at run time."""

from __future__ import annotations

import numpy as np
import pytest

from scorer.heads import EnsembleHead, LinearHead
from scorer.heads.calibration import (
    CalibratedHead,
    Calibration,
    apply_temperature,
    expected_calibration_error,
    log_loss,
    reliability,
)
from scorer.training.calibration import (
    Rows,
    calibrate,
    fit_calibration,
    fit_temperature,
    precision_at,
    weighted_parts,
)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _overconfident(n: int = 6000, genres: int = 6, temperature: float = 2.0, seed: int = 0):
    """Labels drawn from softmax(z); the 'model' reports softmax(z * temperature): over-confident."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=(n, genres))
    truth = _softmax(z)
    y = np.array([rng.choice(genres, p=p) for p in truth])
    return _softmax(z * temperature), truth, y


def test_ece_by_hand():
    # bin 14 (conf >= 14/15): 0.95 and 0.99, one right -> |0.5 - 0.97| = 0.47, weight 2/4
    # bin 9 (0.6-0.667): 0.62 and 0.64, both right -> |1 - 0.63| = 0.37, weight 2/4
    proba = np.array([[0.95, 0.05], [0.01, 0.99], [0.62, 0.38], [0.36, 0.64]])
    y = np.array([0, 0, 0, 1])
    assert expected_calibration_error(proba, y) == pytest.approx(0.5 * 0.47 + 0.5 * 0.37)
    r = reliability(proba, y)
    assert r["bins"] == 15 and sum(r["count"]) == 4
    assert r["count"][14] == 2 and r["count"][9] == 2
    assert r["accuracy"][14] == 0.5 and r["accuracy"][9] == 1.0
    assert r["confidence"][0] is None  # an empty bin has no figure


def test_temperature_one_changes_nothing_and_others_keep_the_top_genre():
    proba, _, _ = _overconfident(200)
    np.testing.assert_array_equal(apply_temperature(proba, 1.0), proba.astype(np.float32))
    for t in (0.5, 2.0, 5.0):
        out = apply_temperature(proba, t)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(out.argmax(axis=1), proba.argmax(axis=1))
    assert (apply_temperature(proba, 2.0).max(axis=1) < proba.max(axis=1) + 1e-7).all()  # softer


def test_fit_temperature_recovers_the_overconfidence():
    proba, truth, y = _overconfident(temperature=2.0)
    assert fit_temperature(proba, y) == pytest.approx((2.0, 0.0), rel=0.08)
    timid, _, y2 = _overconfident(temperature=0.5, seed=1)
    assert fit_temperature(timid, y2) == pytest.approx((0.5, 0.0), rel=0.08)
    # the truth itself needs no temperature
    assert fit_temperature(truth, y) == pytest.approx((1.0, 0.0), rel=0.08)


def _oof(proba: np.ndarray, y: np.ndarray, familiarity: np.ndarray | None = None) -> Rows:
    return Rows("out-of-fold", proba, y, np.arange(len(y)), familiarity, np.arange(len(y)) % 5)


def test_calibrate_reports_cross_fitted_figures():
    proba, truth, y = _overconfident(temperature=2.5)
    c = calibrate(_oof(proba, y))
    assert c["used"] is True
    assert c["temperature"] == pytest.approx(2.5, rel=0.1)
    assert c["ece_before"] > 0.1
    assert c["ece_after"] < 0.03
    assert c["ece_after"] == pytest.approx(expected_calibration_error(truth, y), abs=0.02)
    assert c["log_loss_after"] < c["log_loss_before"]
    assert sum(c["reliability_after"]["count"]) == len(y)
    # already calibrated: the cross-fitted loss does not improve, so no temperature ships
    c = calibrate(_oof(truth.astype(np.float32), y))
    assert c["log_loss_after"] <= c["log_loss_before"] + 1e-9
    if not c["used"]:
        assert c["temperature"] == 1.0


def test_calibrated_head_wraps_single_heads_and_ensembles():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    x = rng.normal(size=(20, 8)).astype(np.float32)
    head = LinearHead("cnn-network", "cnn", w * 2, b)
    calibrated = CalibratedHead(head, 2.0)
    assert calibrated.name == "cnn-network" and calibrated.featurizer == "cnn"
    np.testing.assert_allclose(calibrated.predict_proba(x), apply_temperature(head.predict_proba(x), 2.0), atol=1e-6)
    # dividing a linear head's log-probabilities by 2 is the same as halving its weights
    np.testing.assert_allclose(calibrated.predict_proba(x), LinearHead("h", "cnn", w, b / 2).predict_proba(x),
                               atol=1e-5)
    ens = EnsembleHead([head, LinearHead("other", "cnn", w, b)])
    cal_ens = CalibratedHead(ens, 2.0)
    np.testing.assert_allclose(cal_ens.predict_proba_from({"cnn": x}),
                               apply_temperature(ens.predict_proba_from({"cnn": x}), 2.0), atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        CalibratedHead(head, 0.0)


def test_heads_with_exact_zeros_get_a_uniform_mix():
    """A kNN-like head: one-hot votes that are right 70% of the time. Temperature alone cannot
    give a zero a probability; mixing in the uniform distribution can, and the fit finds ~0.3 x 3/2."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 3000)
    pred = np.where(rng.random(3000) < 0.7, y, (y + rng.integers(1, 3, 3000)) % 3)
    proba = np.eye(3)[pred]
    t, mix = fit_temperature(proba, y)
    calibrated = apply_temperature(proba, t, mix)
    assert calibrated.max(axis=1) == pytest.approx(0.7, abs=0.03)  # the top genre is right 70% of the time
    assert mix > 0 and calibrated.min() > 0
    np.testing.assert_array_equal(calibrated.argmax(axis=1), pred)
    assert expected_calibration_error(calibrated, y) < 0.03 < expected_calibration_error(proba, y)


def test_log_loss_floor_keeps_zero_probabilities_finite():
    proba = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert np.isfinite(log_loss(proba, np.array([1, 0])))


def _shifted(n: int, familiarity: np.ndarray, seed: int, genres: int = 6):
    """Over-confidence that grows as familiarity falls: the reported probabilities are the truth sharpened by
    ``exp(1.2 * (1 - f))`` (a calibration with temperature 1 and slope 1.2 undoes it)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=(n, genres))
    truth = _softmax(z)
    y = np.array([rng.choice(genres, p=p) for p in truth])
    return _softmax(z * np.exp(1.2 * (1 - familiarity))[:, None]), truth, y


def test_a_familiarity_slope_softens_unfamiliar_covers_more_and_never_moves_the_top_genre():
    proba, _, _ = _overconfident(300)
    familiarity = np.linspace(0, 1, 300)
    cal = Calibration(1.2, 0.8)
    np.testing.assert_allclose(cal.temperatures(familiarity), 1.2 * np.exp(0.8 * (1 - familiarity)))
    out = cal.apply(proba, familiarity)
    np.testing.assert_array_equal(out.argmax(axis=1), proba.argmax(axis=1))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    same = np.repeat(proba[:1], 2, axis=0)
    soft, sharp = cal.apply(same, np.array([0.0, 1.0]))
    assert soft.max() < sharp.max()  # the same probabilities, less familiar: less sure
    with pytest.raises(ValueError, match="familiarity"):
        cal.apply(proba)  # a slope needs each cover's familiarity
    np.testing.assert_allclose(Calibration(2.0).apply(proba), apply_temperature(proba, 2.0))  # no slope: plain
    with pytest.raises(ValueError, match="slope"):
        Calibration(1.0, -0.5)


def test_fit_calibration_finds_the_slope_that_unfamiliar_covers_need():
    rng = np.random.default_rng(3)
    familiarity = rng.random(6000)
    proba, truth, y = _shifted(6000, familiarity, seed=3)
    cal = fit_calibration([(Rows("all", proba, y, np.arange(6000), familiarity), 1.0)])
    assert cal.temperature == pytest.approx(1.0, abs=0.15) and cal.slope == pytest.approx(1.2, abs=0.2)
    plain = fit_calibration([(Rows("all", proba, y, np.arange(6000)), 1.0)])  # no familiarity: one temperature
    assert plain.slope == 0.0
    low = familiarity < 0.2
    assert (expected_calibration_error(cal.apply(proba, familiarity)[low], y[low])
            < expected_calibration_error(plain.apply(proba)[low], y[low]) - 0.03)


def test_held_out_rows_make_the_calibration_honest_where_a_plain_out_of_fold_temperature_is_not():
    """Out-of-fold covers are mostly familiar, covers of other collections unfamiliar and over-confident. Fitted on
    both, with familiarity, the calibration is honest on both; a plain temperature fitted on the out-of-fold rows
    (how models were calibrated before) stays over-confident on the others. Every figure is cross-fitted (a
    held-out split is never calibrated by a fit that saw its covers)."""
    rng = np.random.default_rng(5)
    f_in = rng.uniform(0.5, 1.0, 4000)
    p_in, _, y_in = _shifted(4000, f_in, seed=5)
    held = []
    for k in range(3):
        f_out = rng.uniform(0.0, 0.2, 800)
        p_out, _, y_out = _shifted(800, f_out, seed=10 + k)
        held.append(Rows(f"heldout:{k}", p_out, y_out, np.arange(4000 + 800 * k, 4800 + 800 * k), f_out))
    both = calibrate(_oof(p_in, y_in, f_in), held)
    assert both["used"] and both["slope"] == pytest.approx(1.2, abs=0.25)
    assert both["heldout"]["ece_after"] < both["heldout"]["ece_before"] - 0.1
    assert set(both["heldout"]["ece_after_per_split"]) == {"heldout:0", "heldout:1", "heldout:2"}
    assert max(both["heldout"]["ece_after_per_split"].values()) < 0.05
    assert both["ece_after"] < 0.04  # honest at home too
    plain = fit_calibration([(Rows("out-of-fold", p_in, y_in, np.arange(4000)), 1.0)])
    p_held, y_held = np.concatenate([h.proba for h in held]), np.concatenate([h.y for h in held])
    assert expected_calibration_error(plain.apply(p_held), y_held) > both["heldout"]["ece_after"] + 0.1


def test_precision_at_counts_what_min_prob_keeps():
    proba = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55], [0.9, 0.1]])
    y = np.array([0, 1, 1, 0, 1])
    got = precision_at(proba, y)
    assert got["0.5"] == {"kept": 5, "share": 1.0, "precision": 0.4}
    assert got["0.7"] == {"kept": 3, "share": 0.6, "precision": round(2 / 3, 4)}
    assert precision_at(np.full((2, 2), 0.5), np.array([0, 1]), (0.7,))["0.7"] == {"kept": 0, "share": 0.0,
                                                                                    "precision": None}


# ------------------------------------------------------------------------------------------ by hand
def test_apply_temperature_by_hand_per_row_and_with_a_uniform_mix():
    p = np.array([[0.5, 0.25, 0.25], [0.8, 0.2, 0.0]])
    # T = 2: each probability's square root, renormalised
    root = np.sqrt(p[0]) / np.sqrt(p[0]).sum()
    np.testing.assert_allclose(apply_temperature(p[:1], 2.0)[0], root, rtol=1e-6)
    # one temperature per row: the first row softened, the second unchanged but for the zero's floor
    out = apply_temperature(p, np.array([2.0, 1.0]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], root, rtol=1e-6)
    np.testing.assert_allclose(out[1], [0.8, 0.2, 0.0], atol=1e-7)
    # mix 0.3 of the uniform distribution in, then T = 1: (1 - mix) p + mix / G
    np.testing.assert_allclose(apply_temperature(p, 1.0, mix=0.3), 0.7 * p + 0.1, rtol=1e-6)
    # T = 0.5 squares, after the mix
    mixed = 0.7 * p[1] + 0.1
    np.testing.assert_allclose(apply_temperature(p[1:], 0.5, mix=0.3)[0], mixed ** 2 / (mixed ** 2).sum(), rtol=1e-5)
    # exact zeros are floored at EPS before the log: T = 0.5 keeps them (near) zero, not NaN
    assert np.isfinite(apply_temperature(p[1:], 0.5)).all()


def test_reliability_puts_a_sure_top_probability_in_the_last_bin_and_rounds():
    proba = np.array([[1.0, 0.0], [0.123456, 0.876544], [0.5, 0.5]])
    r = reliability(proba, np.array([0, 0, 0]), bins=4)
    assert r == {"bins": 4, "count": [0, 0, 1, 2], "confidence": [None, None, 0.5, round((1 + 0.876544) / 2, 4)],
                 "accuracy": [None, None, 1.0, 0.5]}


def test_ece_and_log_loss_of_nothing_are_zero_and_log_loss_by_hand():
    none = np.zeros((0, 3))
    assert expected_calibration_error(none, np.zeros(0, int)) == 0.0 and log_loss(none, np.zeros(0, int)) == 0.0
    proba = np.array([[0.5, 0.5], [0.2, 0.8], [1.0, 0.0]])
    assert log_loss(proba, np.array([0, 1, 1])) == pytest.approx(-(np.log(0.5) + np.log(0.8) + np.log(1e-12)) / 3)
    assert expected_calibration_error(np.array([[0.7, 0.3]]), np.array([0])) == pytest.approx(0.3)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"temperature": 0.0}, "temperature must be positive, got 0.0"),
    ({"slope": -0.1}, "slope must be 0 or more (a less familiar cover is never made surer), got -0.1"),
    ({"mix": 1.0}, "mix must be in [0, 1), got 1.0"),
    ({"mix": -0.01}, "mix must be in [0, 1), got -0.01"),
])
def test_calibration_refuses_numbers_out_of_range(kwargs, message):
    with pytest.raises(ValueError) as e:
        Calibration(**kwargs)
    assert str(e.value) == message


def test_calibration_temperatures_grow_as_familiarity_falls():
    assert Calibration().identity and not Calibration(1.0, 0.0, 0.01).identity
    assert not Calibration(1.0, 0.5).identity and not Calibration(2.0).identity
    assert Calibration(mix=0.0, slope=0.0).as_dict() == {"temperature": 1.0, "slope": 0.0, "mix": 0.0}
    assert Calibration(2.0).temperatures(None) == 2.0
    cal = Calibration(2.0, 0.5)
    got = cal.temperatures(np.array([1.0, 0.0, 0.5, 1.7, -1.0]))
    np.testing.assert_allclose(got, [2.0, 2.0 * np.exp(0.5), 2.0 * np.exp(0.25), 2.0, 2.0 * np.exp(0.5)])
    with pytest.raises(ValueError, match="depends on each cover's familiarity; none was given"):
        cal.temperatures(None)
    p = np.array([[0.6, 0.4], [0.6, 0.4]])
    np.testing.assert_allclose(cal.apply(p, np.array([1.0, 0.0])),
                               apply_temperature(p, np.array([2.0, 2.0 * np.exp(0.5)])), rtol=1e-6)
    mixed = Calibration(1.5, 0.0, 0.2)
    np.testing.assert_allclose(mixed.apply(p), apply_temperature(p, 1.5, 0.2), rtol=1e-6)


def test_a_calibrated_head_names_its_head_in_a_bad_number_and_keeps_its_numbers():
    rng = np.random.default_rng(0)
    head = LinearHead("colour-logreg", "colour", rng.normal(size=(4, 3)), rng.normal(size=3))
    with pytest.raises(ValueError) as e:
        CalibratedHead(head, -1.0)
    assert str(e.value) == f"{head.name}: temperature must be positive, got -1.0"
    wrapped = CalibratedHead(head, 2.0, mix=0.1, slope=0.5)
    assert (wrapped.temperature, wrapped.mix, wrapped.calibration) == (2.0, 0.1, Calibration(2.0, 0.5, 0.1))
    ens = EnsembleHead([head, LinearHead("other", "colour", rng.normal(size=(4, 3)), rng.normal(size=3))])
    assert CalibratedHead(ens, 2.0).members == ens.members
    same = CalibratedHead(head, Calibration(3.0))
    assert same.calibration == Calibration(3.0) and same.temperature == 3.0 and same.mix == 0.0


def _rows(name: str, n: int, fold: bool = False) -> Rows:
    return Rows(name, np.full((n, 2), 0.5), np.zeros(n, int), np.arange(n), None, np.arange(n) % 2 if fold else None)


def test_weighted_parts_share_the_held_out_weight_equally_among_splits():
    oof, a, b, empty = _rows("oof", 10, True), _rows("a", 3), _rows("b", 300), _rows("e", 0)
    got = [(r.name, w) for r, w in weighted_parts(oof, [a, empty, b], 0.4)]
    assert got == [("oof", pytest.approx(0.6)), ("a", pytest.approx(0.2)), ("b", pytest.approx(0.2))]
    assert [(r.name, w) for r, w in weighted_parts(oof, [], 0.4)] == [("oof", 1.0)]
    # without out-of-fold rows, the held-out splits share everything
    assert [(r.name, w) for r, w in weighted_parts(None, [a, b], 0.4)] == [("a", 0.5), ("b", 0.5)]
    assert [(r.name, w) for r, w in weighted_parts(_rows("oof", 0), [a], 0.4)] == [("a", 1.0)]


def test_rows_take_keeps_every_field_in_step():
    r = Rows("x", np.arange(8.0).reshape(4, 2), np.arange(4), np.arange(4) + 10, np.linspace(0, 1, 4), np.arange(4) % 2)
    t = r.take(np.array([True, False, False, True]))
    assert t.name == "x" and t.y.tolist() == [0, 3] and t.covers.tolist() == [10, 13] and t.fold.tolist() == [0, 1]
    assert t.proba.tolist() == [[0.0, 1.0], [6.0, 7.0]] and t.familiarity.tolist() == [0.0, 1.0]
    assert _rows("y", 3).take(np.array([True, True, False])).familiarity is None


def test_fit_calibration_of_nothing_is_the_identity_and_a_mix_only_for_exact_zeros():
    assert fit_calibration([(_rows("e", 0), 1.0)]) == Calibration()
    proba, _, y = _overconfident(2000, temperature=2.0)
    no_zeros = fit_calibration([(Rows("a", proba, y, np.arange(2000)), 1.0)])
    assert no_zeros.mix == 0.0 and no_zeros.slope == 0.0
    # a kNN-like head: exact zeros where the true genre got no vote need a mix
    votes = np.where(proba >= np.sort(proba, axis=1)[:, [-2]], proba, 0.0)
    votes /= votes.sum(axis=1, keepdims=True)
    assert fit_calibration([(Rows("k", votes, y, np.arange(2000)), 1.0)]).mix > 0.01


def test_calibrate_ships_nothing_when_calibration_does_not_help():
    _, truth, y = _overconfident(1500, temperature=1.0, seed=3)
    got = calibrate(_oof(truth, y), heldout_weight=0.0)
    assert (got["temperature"], got["slope"], got["mix"], got["used"]) == (1.0, 0.0, 0.0, False)
    assert got["log_loss_after"] == got["log_loss_before"] and got["ece_after"] == got["ece_before"]
    assert got["after_oof"] is truth and "heldout" not in got and "heldout_weight" not in got
    over, _, y2 = _overconfident(1500, temperature=2.0, seed=3)
    shipped = calibrate(_oof(over, y2))
    assert shipped["used"] is True and shipped["temperature"] == round(shipped["temperature"], 4)
    assert shipped["log_loss_after"] < shipped["log_loss_before"]


def test_a_calibrated_head_passes_each_covers_familiarity_on():
    rng = np.random.default_rng(1)
    head = LinearHead("cnn-logreg", "cnn", rng.normal(size=(4, 3)), rng.normal(size=3))
    x, familiarity = rng.normal(size=(3, 4)).astype(np.float32), np.array([1.0, 0.5, 0.0])
    wrapped = CalibratedHead(head, 1.5, slope=1.0)
    expected = apply_temperature(head.predict_proba(x), 1.5 * np.exp(1.0 - familiarity))
    np.testing.assert_allclose(wrapped.predict_proba(x, familiarity), expected, atol=1e-6)
    ensemble = CalibratedHead(EnsembleHead([head]), 1.5, slope=1.0)
    np.testing.assert_allclose(ensemble.predict_proba_from({"cnn": x}, familiarity), expected, atol=1e-6)


def test_precision_at_of_no_rows_and_its_shares_to_four_places():
    assert precision_at(np.zeros((0, 2)), np.zeros(0, int), (0.5,)) == {"0.5": {"kept": 0, "share": 0.0,
                                                                              "precision": None}}
    got = precision_at(np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]), np.array([0, 0, 1]), (0.85,))
    assert got == {"0.85": {"kept": 1, "share": 0.3333, "precision": 1.0}}
