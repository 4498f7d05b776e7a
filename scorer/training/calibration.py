"""Fitting a head's calibration on out-of-fold *and* held-out-collection predictions, judged honestly.

A calibration fitted only on out-of-fold predictions is honest on covers like the training ones and
over-confident on covers from elsewhere; fitted only on held-out collections it would be timid at
home. Here both kinds of predictions are fitted together, each covers' familiarity beside them
(:mod:`scorer.heads.familiarity`), so that the temperature may grow where a cover looks unfamiliar:
``T(f) = temperature * exp(slope * (1 - f))`` (:class:`scorer.heads.calibration.Calibration`).

Weights: the out-of-fold rows weigh ``1 - w`` in all, and every held-out split the same share of ``w``, whatever
its size (one large split must not decide alone). ``w`` is the largest share that keeps the calibration honest on
covers like the training ones (cross-fitted out-of-fold ECE within :data:`OUT_OF_FOLD_ECE`): where the held-out
collections disagree with the training ones more than familiarity can tell apart, home comes first.

The *after* figures are cross-fitted: a fold's out-of-fold rows are calibrated by a fit on the other
folds and on the held-out rows of other covers; a held-out split's rows by a fit on everything that
is not one of its covers. No figure is measured on covers its calibration was fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scorer.heads.calibration import Calibration, expected_calibration_error, log_loss, reliability

#: the held-out splits' shares of the calibration fit tried, largest first (the out-of-fold rows have the rest)
HELDOUT_WEIGHTS = (0.5, 0.4, 0.3, 0.2, 0.1, 0.0)
#: the cross-fitted out-of-fold ECE a calibration must keep: the largest held-out share that keeps it is used
OUT_OF_FOLD_ECE = 0.05
#: bounds of the fitted numbers
TEMPERATURE_RANGE = (0.05, 20.0)
MAX_SLOPE = 4.0
MAX_MIX = 0.5


@dataclass
class Rows:
    """Predictions of one kind: out-of-fold (``fold`` set) or one held-out split's."""

    name: str
    proba: np.ndarray
    y: np.ndarray
    covers: np.ndarray  # the cover (dataset row) of each prediction
    familiarity: np.ndarray | None = None
    fold: np.ndarray | None = None

    def take(self, mask: np.ndarray) -> Rows:
        return Rows(self.name, self.proba[mask], self.y[mask], self.covers[mask],
                    None if self.familiarity is None else self.familiarity[mask],
                    None if self.fold is None else self.fold[mask])


def weighted_parts(oof: Rows | None, heldout: list[Rows], heldout_weight: float) -> list[tuple[Rows, float]]:
    parts = [r for r in heldout if len(r.y)]
    out = []
    own = 1.0 if not parts else 1.0 - heldout_weight
    if oof is not None and len(oof.y):
        out.append((oof, own))
    out += [(r, (heldout_weight if oof is not None and len(oof.y) else 1.0) / len(parts)) for r in parts]
    return out


def _loss(cal: Calibration, parts: list[tuple[Rows, float]]) -> float:
    return sum(w * log_loss(cal.apply(r.proba, r.familiarity), r.y) for r, w in parts)


def fit_calibration(parts: list[tuple[Rows, float]]) -> Calibration:
    """The calibration minimising the weighted mean log loss over ``parts``. The familiarity slope is fitted
    when every part has familiarity, the uniform mix when some probabilities are exactly 0."""
    from scipy.optimize import minimize

    parts = [(r, w) for r, w in parts if len(r.y)]
    if not parts:
        return Calibration()
    with_slope = all(r.familiarity is not None for r, _ in parts)
    with_mix = any((r.proba <= 0).any() for r, _ in parts)
    lo, hi = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])

    def unpack(v: np.ndarray) -> Calibration:
        return Calibration(float(np.exp(v[0])), float(v[1]) if with_slope else 0.0, float(v[2]) if with_mix else 0.0)

    best = None
    bounds = [(lo, hi), (0.0, MAX_SLOPE if with_slope else 0.0), (0.0, MAX_MIX if with_mix else 0.0)]
    for start in ((0.0, 0.0, 0.05), (0.5, 0.5, 0.02)):  # two starts: the loss is not convex in all three
        x0 = np.array([min(max(v, b0), b1) for v, (b0, b1) in zip(start, bounds)])
        res = minimize(lambda v: _loss(unpack(v), parts), x0=x0, method="Nelder-Mead", bounds=bounds,
                       options={"xatol": 1e-5, "fatol": 1e-7, "maxiter": 3000})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None  # two starts, two results
    return unpack(best.x)


def _rounded(c: Calibration) -> Calibration:
    return Calibration(round(c.temperature, 4), round(c.slope, 4), round(c.mix, 5))


def _cross_fitted_oof(oof: Rows, heldout: list[Rows], heldout_weight: float) -> np.ndarray:
    """Each fold's out-of-fold rows through a calibration fitted on the other folds and on the held-out rows of
    other covers."""
    assert oof.fold is not None  # out-of-fold rows: each has its fold
    after = np.empty_like(oof.proba)
    for f in np.unique(oof.fold):
        rows = oof.fold == f
        test_covers = oof.covers[rows]
        parts = weighted_parts(oof.take(~rows), [h.take(~np.isin(h.covers, test_covers)) for h in heldout],
                               heldout_weight)
        after[rows] = fit_calibration(parts).apply(oof.proba[rows], _f(oof.familiarity, rows))
    return after


def calibrate(oof: Rows, heldout: list[Rows] | None = None, heldout_weight: float | None = None) -> dict:
    """One head's calibration and its honest figures.

    The held-out rows' share of the fit is the largest of :data:`HELDOUT_WEIGHTS` that keeps the cross-fitted
    out-of-fold ECE within :data:`OUT_OF_FOLD_ECE` (honest at home first, then as honest as it can be
    elsewhere), unless ``heldout_weight`` fixes it. Returns the shipped calibration (``temperature``, ``slope``,
    ``mix``, fitted on every row; ``used`` only if the cross-fitted log loss is lower with it than without, out of
    fold or on the held-out rows), the out-of-fold ECE and reliability before and after, the held-out splits'
    likewise, and the cross-fitted calibrated probabilities (``after_oof``, ``after_heldout``: by split) for the
    figures that need them.
    """
    heldout = heldout or []
    weights = (heldout_weight,) if heldout_weight is not None else (HELDOUT_WEIGHTS if heldout else (0.0,))
    for weight in weights:
        after_oof = _cross_fitted_oof(oof, heldout, weight)
        if expected_calibration_error(after_oof, oof.y) <= OUT_OF_FOLD_ECE:
            break
    after_heldout = {}
    for h in heldout:
        others = [o.take(~np.isin(o.covers, h.covers)) for o in heldout if o is not h]
        parts = weighted_parts(oof.take(~np.isin(oof.covers, h.covers)), others, weight)
        after_heldout[h.name] = fit_calibration(parts).apply(h.proba, h.familiarity)
    use = log_loss(after_oof, oof.y) < log_loss(oof.proba, oof.y)
    if heldout:
        y_held = np.concatenate([h.y for h in heldout])
        use |= (log_loss(np.concatenate([after_heldout[h.name] for h in heldout]), y_held)
                < log_loss(np.concatenate([h.proba for h in heldout]), y_held))
    shipped = _rounded(fit_calibration(weighted_parts(oof, heldout, weight))) if use else Calibration()
    if not use:
        after_oof, after_heldout = oof.proba, {h.name: h.proba for h in heldout}
    out = {"temperature": shipped.temperature, "slope": shipped.slope, "mix": shipped.mix, "used": bool(use),
           **({"heldout_weight": weight} if heldout else {}),
           "log_loss_before": round(log_loss(oof.proba, oof.y), 4),
           "log_loss_after": round(log_loss(after_oof, oof.y), 4),
           "ece_before": round(expected_calibration_error(oof.proba, oof.y), 4),
           "ece_after": round(expected_calibration_error(after_oof, oof.y), 4),
           "reliability_before": reliability(oof.proba, oof.y), "reliability_after": reliability(after_oof, oof.y)}
    if heldout:
        p_before = np.concatenate([h.proba for h in heldout])
        p_after = np.concatenate([after_heldout[h.name] for h in heldout])
        y_held = np.concatenate([h.y for h in heldout])
        per_split = {h.name: round(expected_calibration_error(after_heldout[h.name], h.y), 4) for h in heldout}
        out["heldout"] = {"ece_before": round(expected_calibration_error(p_before, y_held), 4),
                          "ece_after": round(expected_calibration_error(p_after, y_held), 4),
                          "ece_after_per_split": per_split,
                          "reliability_before": reliability(p_before, y_held),
                          "reliability_after": reliability(p_after, y_held)}
    out["after_oof"], out["after_heldout"] = after_oof, after_heldout
    return out


def _f(familiarity: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if familiarity is None else familiarity[rows]


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(T, mix)`` minimising the log loss of plain temperature scaling on ``y``; ``mix`` is fitted only
    for heads that give exact zeros (0 otherwise)."""
    n = len(y)
    cal = fit_calibration([(Rows("", np.asarray(proba), np.asarray(y), np.arange(n)), 1.0)])
    return cal.temperature, cal.mix


def precision_at(proba: np.ndarray, y: np.ndarray, thresholds: tuple[float, ...] = (0.5, 0.7)) -> dict:
    """What ``--min-prob t`` keeps for each row's top genre (top-1 probability at least ``t``): how many rows,
    their share, and how many of them are that genre (``precision``; ``None`` when none is kept)."""
    top = np.asarray(proba).max(axis=1)
    right = np.asarray(proba).argmax(axis=1) == np.asarray(y)
    out = {}
    for t in thresholds:
        kept = top >= t
        out[f"{t:g}"] = {"kept": int(kept.sum()), "share": round(float(kept.mean()), 4) if len(kept) else 0.0,
                         "precision": round(float(right[kept].mean()), 4) if kept.any() else None}
    return out
