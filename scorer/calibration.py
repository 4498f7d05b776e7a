"""Calibrated probabilities: temperature scaling, and how calibration is measured.

A head's probabilities are calibrated when, of the covers whose top genre has probability
about 0.8, about 80% are that genre. Temperature scaling divides the log-probabilities by one
number ``T`` (fitted on out-of-fold predictions at training time, shipped in the manifest) and
renormalises: ``T > 1`` softens over-confident heads, ``T < 1`` sharpens timid ones. Heads that
give exact zeros (a kNN vote, a tree ensemble) are first mixed with a little of the uniform
distribution (``mix``, fitted with ``T``), so that a genre no neighbour voted for is unlikely, not
impossible. Neither step changes which genre is on top, so accuracy is untouched.
"""

from __future__ import annotations

import numpy as np

#: bins of the expected calibration error and the reliability diagram (equal width on [0, 1])
ECE_BINS = 15
#: probabilities are floored here before the log: kNN votes and trees give exact zeros
EPS = 1e-12


def apply_temperature(proba: np.ndarray, temperature: float, mix: float = 0.0) -> np.ndarray:
    """``softmax(log((1 - mix) p + mix / G) / T)`` per row."""
    if temperature == 1.0 and mix == 0.0:
        return np.asarray(proba, dtype=np.float32)
    p = np.asarray(proba, dtype=np.float64)
    if mix:
        p = (1.0 - mix) * p + mix / p.shape[1]
    z = np.log(np.clip(p, EPS, 1.0)) / temperature
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


class CalibratedHead:
    """A head (or ensemble) whose probabilities go through :func:`apply_temperature`."""

    def __init__(self, head, temperature: float, mix: float = 0.0):
        if not temperature > 0:
            raise ValueError(f"{head.name}: temperature must be positive, got {temperature}")
        if not 0.0 <= mix < 1.0:
            raise ValueError(f"{head.name}: mix must be in [0, 1), got {mix}")
        self.head = head
        self.temperature = float(temperature)
        self.mix = float(mix)
        self.name = head.name
        self.featurizer = head.featurizer

    @property
    def members(self):
        return self.head.members

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return apply_temperature(self.head.predict_proba(features), self.temperature, self.mix)

    def predict_proba_from(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return apply_temperature(self.head.predict_proba_from(features), self.temperature, self.mix)
