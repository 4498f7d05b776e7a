"""The figures of an evaluation: per-head metrics, per-source and held-out figures, and the default-head rule."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from scorer.heads.calibration import expected_calibration_error
from scorer.training.calibration import precision_at
from scorer.training.splits import Split


def metrics(y_true: np.ndarray, y_pred: np.ndarray, genres: list[str]) -> dict:
    n = len(genres)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    support = cm.sum(axis=1)
    recall = np.divide(np.diag(cm), support, out=np.zeros(n), where=support > 0)
    predicted = cm.sum(axis=0)
    precision = np.divide(np.diag(cm), predicted, out=np.zeros(n), where=predicted > 0)
    return {
        "accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "balanced_accuracy": float(recall[support > 0].mean()) if (support > 0).any() else 0.0,
        "recall": {g: float(r) for g, r in zip(genres, recall)},
        "precision": {g: float(p) for g, p in zip(genres, precision)},
        "confusion_matrix": cm.tolist(),
    }


def _quartiles(values: np.ndarray) -> dict:
    q = np.quantile(np.asarray(values, dtype=np.float64), [0.25, 0.5, 0.75])
    return {"q25": round(float(q[0]), 4), "median": round(float(q[1]), 4), "q75": round(float(q[2]), 4)}


def by_source(oof: dict[str, np.ndarray], y: np.ndarray, genres: list[str], sources: list[str],
              calibrated: dict[str, np.ndarray]) -> dict:
    """Per input set: each head's out-of-fold figures on that set's covers alone (its own genres); the ECE
    of its cross-fitted calibrated probabilities."""
    src = np.asarray(sources)
    out = {}
    for s in sorted(set(sources)):
        rows = src == s
        present = [g for g in range(len(genres)) if (y[rows] == g).any()]
        heads = {}
        for name, proba in oof.items():
            m = metrics(y[rows], proba[rows].argmax(1), genres)
            heads[name] = {"accuracy": round(m["accuracy"], 4), "balanced_accuracy": round(m["balanced_accuracy"], 4),
                           "recall": {genres[g]: round(m["recall"][genres[g]], 4) for g in present},
                           "ece": round(expected_calibration_error(calibrated[name][rows], y[rows]), 4)}
        out[s] = {"covers": int(rows.sum()), "genres": [genres[g] for g in present], "heads": heads}
    return out


def heldout_figures(split: Split, result: dict, oof: dict[str, np.ndarray], y: np.ndarray,
                    genres: list[str], calibrated: dict[str, np.ndarray]) -> dict:
    """A held-out split's figures beside the in-CV figures of the same covers (the gap).

    ``calibrated`` are the split's probabilities through a calibration fitted without any of its covers
    (:func:`scorer.training.calibration.calibrate`): ECE and the precision of what ``--min-prob`` keeps are
    measured on them."""
    test = split.test
    shared = [genres.index(g) for g in split.info["genres"]]
    yt = y[test]
    heads: dict[str, dict[str, Any]] = {}
    for name, proba in result["probs"].items():
        pred = proba.argmax(1)
        recall = {genres[g]: float((pred[yt == g] == g).mean()) for g in shared}
        in_cv = oof[name][test].argmax(1)
        in_cv_recall = {genres[g]: float((in_cv[yt == g] == g).mean()) for g in shared}
        predicted = Counter(genres[p] for p in pred)
        heads[name] = {
            "balanced_accuracy": round(float(np.mean(list(recall.values()))), 4),
            "recall": {g: round(r, 4) for g, r in recall.items()},
            "in_cv_balanced_accuracy": round(float(np.mean(list(in_cv_recall.values()))), 4),
            "in_cv_recall": {g: round(r, 4) for g, r in in_cv_recall.items()},
            "predicted_share": {g: round(predicted[g] / len(pred), 4) for g in genres if predicted[g]},
            "ece": round(expected_calibration_error(calibrated[name], yt), 4),
            "ece_uncalibrated": round(expected_calibration_error(proba, yt), 4),
            "precision_at": precision_at(calibrated[name], yt),
        }
        for v, probs in (result.get("variants") or {}).items():
            if name in probs:
                pv = probs[name].argmax(1)
                heads[name].setdefault("variants", {})[v] = round(float(np.mean(
                    [(pv[yt == g] == g).mean() for g in shared])), 4)
        heads[name]["gap"] = round(heads[name]["in_cv_balanced_accuracy"] - heads[name]["balanced_accuracy"], 4)
    familiarity = result.get("familiarity")
    return {**split.info, "seconds": result.get("seconds"), "missing_genres": result["missing_genres"],
            **({"familiarity": _quartiles(familiarity)} if familiarity is not None else {}), "heads": heads}


def heldout_summary(heldout: dict) -> dict:
    """Per head, over the held-out splits: the mean balanced accuracy, the worst ECE, and the lowest
    precision of what ``--min-prob`` 0.5 and 0.7 keep (splits where it keeps nothing do not count)."""
    names = list(next(iter(heldout.values()))["heads"])
    out = {}
    for n in names:
        figures = [split["heads"][n] for split in heldout.values()]
        lowest = {}
        for t in ("0.5", "0.7"):
            kept = [f["precision_at"][t]["precision"] for f in figures if f["precision_at"][t]["precision"] is not None]
            lowest[t] = round(min(kept), 4) if kept else None
        out[n] = {"balanced_accuracy": round(float(np.mean([f["balanced_accuracy"] for f in figures])), 4),
                  "worst_ece": round(max(f["ece"] for f in figures), 4), "lowest_precision_at": lowest}
        variants = {v for f in figures for v in f.get("variants", {})}
        for v in sorted(variants):
            if all(v in f.get("variants", {}) for f in figures):
                out[n].setdefault("variants_change", {})[v] = round(float(np.mean(
                    [f["variants"][v] - f["balanced_accuracy"] for f in figures])), 4)
    return out


#: a head whose in-collection balanced accuracy is within this of the best one's may be chosen for its held-out one
HEAD_CV_TOLERANCE = 0.02
#: held-out means closer than this are a tie (a few hundred covers per split): the in-collection figure decides
HELDOUT_TIE = 0.01


def best_head(cv: dict) -> str:
    """The default head: with held-out collections, the best held-out balanced accuracy (mean over the splits)
    among the heads within :data:`HEAD_CV_TOLERANCE` of the best in-collection figure, held-out means within
    :data:`HELDOUT_TIE` of the best counting as a tie that the in-collection figure breaks; without held-out
    collections, the best in-collection figure."""
    heads = cv["heads"]
    top = max(heads, key=lambda n: heads[n]["balanced_accuracy"])
    held = cv.get("heldout_summary") or {}
    near = [n for n in heads if n in held and heads[n]["balanced_accuracy"] >= heads[top]["balanced_accuracy"]
            - HEAD_CV_TOLERANCE]
    if not near:
        return top
    best_held = max(held[n]["balanced_accuracy"] for n in near)
    tied = [n for n in near if held[n]["balanced_accuracy"] >= best_held - HELDOUT_TIE]
    return max(tied, key=lambda n: heads[n]["balanced_accuracy"])
