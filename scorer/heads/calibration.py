"""Calibrated probabilities: temperature scaling, and how calibration is measured.

A head's probabilities are calibrated when, of the covers whose top genre has probability
about 0.8, about 80% are that genre. Temperature scaling divides the log-probabilities by a
number ``T`` (fitted at training time, shipped in the manifest) and renormalises: ``T > 1``
softens over-confident heads, ``T < 1`` sharpens timid ones. Heads that give exact zeros (a kNN
vote, a tree ensemble) are first mixed with a little of the uniform distribution (``mix``, fitted
with ``T``), so that a genre no neighbour voted for is unlikely, not impossible. Neither step
changes which genre is on top, so accuracy is untouched.

How sure a model may be depends on how familiar a cover looks (:mod:`scorer.heads.familiarity`): the
temperature grows as familiarity falls, ``T(f) = temperature * exp(slope * (1 - f))``, with both
numbers fitted on predictions for covers of collections the model did not train on as well as
on out-of-fold ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: bins of the expected calibration error and the reliability diagram (equal width on [0, 1])
ECE_BINS = 15
#: probabilities are floored here before the log: kNN votes and trees give exact zeros
EPS = 1e-12


def apply_temperature(proba: np.ndarray, temperature: float | np.ndarray, mix: float = 0.0) -> np.ndarray:
    """``softmax(log((1 - mix) p + mix / G) / T)`` per row; ``temperature`` is one number or one per row."""
    if np.ndim(temperature) == 0 and temperature == 1.0 and mix == 0.0:
        return np.asarray(proba, dtype=np.float32)
    p = np.asarray(proba, dtype=np.float64)
    if mix:
        p = (1.0 - mix) * p + mix / p.shape[1]
    t = np.asarray(temperature, dtype=np.float64)
    z = np.log(np.clip(p, EPS, 1.0)) / (t[:, None] if t.ndim else t)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def reliability(proba: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Per equal-width bin of top-1 probability: covers, mean top-1 probability, share correct."""
    proba = np.asarray(proba, dtype=np.float64)
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(y)
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    count = np.bincount(idx, minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    correct_sum = np.bincount(idx, weights=correct.astype(float), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        accuracy = np.where(count > 0, correct_sum / count, np.nan)
    return {"bins": bins, "count": count.tolist(),
            "confidence": [None if np.isnan(v) else round(float(v), 4) for v in mean_conf],
            "accuracy": [None if np.isnan(v) else round(float(v), 4) for v in accuracy]}


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the covers-weighted mean gap between top-1 probability and accuracy over the bins."""
    r = reliability(proba, y, bins)
    n = sum(r["count"])
    if n == 0:
        return 0.0
    return float(sum(c * abs(a - p) for c, p, a in zip(r["count"], r["confidence"], r["accuracy"]) if c) / n)


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(np.asarray(proba, dtype=np.float64)[np.arange(len(y)), np.asarray(y)], EPS, 1.0)
    return float(-np.log(p).mean()) if len(p) else 0.0


@dataclass(frozen=True)
class Calibration:
    """``T(f) = temperature * exp(slope * (1 - f))`` for a cover of familiarity ``f``, after mixing ``mix``
    of the uniform distribution in. ``slope`` 0 is plain temperature scaling."""

    temperature: float = 1.0
    slope: float = 0.0
    mix: float = 0.0

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not self.slope >= 0:
            raise ValueError(f"slope must be 0 or more (a less familiar cover is never made surer), got {self.slope}")
        if not 0.0 <= self.mix < 1.0:
            raise ValueError(f"mix must be in [0, 1), got {self.mix}")

    def as_dict(self) -> dict:
        return {"temperature": self.temperature, "slope": self.slope, "mix": self.mix}

    @property
    def identity(self) -> bool:
        return self.temperature == 1.0 and self.slope == 0.0 and self.mix == 0.0

    def temperatures(self, familiarity: np.ndarray | None) -> float | np.ndarray:
        if self.slope == 0.0:
            return self.temperature
        if familiarity is None:
            raise ValueError("this calibration depends on each cover's familiarity; none was given")
        f = np.clip(np.asarray(familiarity, dtype=np.float64), 0.0, 1.0)
        return self.temperature * np.exp(self.slope * (1.0 - f))

    def apply(self, proba: np.ndarray, familiarity: np.ndarray | None = None) -> np.ndarray:
        return apply_temperature(proba, self.temperatures(familiarity), self.mix)


class CalibratedHead:
    """A head (or ensemble) whose probabilities go through a :class:`Calibration`."""

    def __init__(self, head, temperature: float | Calibration, mix: float = 0.0, slope: float = 0.0):
        try:
            self.calibration = (temperature if isinstance(temperature, Calibration)
                                else Calibration(float(temperature), float(slope), float(mix)))
        except ValueError as e:
            raise ValueError(f"{head.name}: {e}") from None
        self.head = head
        self.temperature = self.calibration.temperature
        self.mix = self.calibration.mix
        self.name = head.name
        self.featurizer = head.featurizer

    @property
    def members(self):
        return self.head.members

    def predict_proba(self, features: np.ndarray, familiarity: np.ndarray | None = None) -> np.ndarray:
        return self.calibration.apply(self.head.predict_proba(features), familiarity)

    def predict_proba_from(self, features: dict[str, np.ndarray], familiarity: np.ndarray | None = None
                           ) -> np.ndarray:
        return self.calibration.apply(self.head.predict_proba_from(features), familiarity)
