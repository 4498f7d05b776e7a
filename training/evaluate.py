"""Stratified k-fold evaluation of every featurizer+head pair and their ensemble."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .heads import HEAD_KINDS, fit_head

FEATURIZER_KINDS = ("cnn", "colour")
BLEND = "blend"


@dataclass
class Fold:
    """What one fold of :func:`cross_validate` works with, when it is not the same for every fold."""

    features: dict[str, np.ndarray]
    prefitted: dict = field(default_factory=dict)  # heads already fitted on ``fit_rows``, by name
    fit_rows: np.ndarray | None = None  # training rows to fit on; the other training rows choose the blend
    #: other features of the same covers, by variant name and featurizer kind (int8, flip TTA):
    #: the heads fitted on ``features`` score them too
    variants: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def balanced_log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Log loss with every genre weighted equally (the metric is balanced accuracy)."""
    p = np.clip(proba[np.arange(len(y)), y], 1e-7, 1.0)
    counts = np.bincount(y)
    return float(np.mean([-np.log(p[y == g]).mean() for g in np.flatnonzero(counts)]))


def select_blend(probs: dict[str, np.ndarray], y: np.ndarray, rounds: int = 25) -> dict[str, float]:
    """Blend weights by greedy ensemble selection with replacement (Caruana et al., 2004): each
    round adds the member whose inclusion most lowers the balanced log loss on these rows."""
    chosen: Counter = Counter()
    current = None
    for r in range(rounds):
        best = None
        for name, p in probs.items():
            candidate = p if current is None else (current * r + p) / (r + 1)
            loss = balanced_log_loss(y, candidate)
            if best is None or loss < best[0]:
                best = (loss, name, candidate)
        chosen[best[1]] += 1
        current = best[2]
    return {n: round(c / rounds, 4) for n, c in sorted(chosen.items(), key=lambda kv: -kv[1])}


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


def stratified_folds(y: np.ndarray, folds: int, seed: int, groups: list[str] | None = None) -> list[np.ndarray]:
    """Test rows of each fold; with ``groups``, every group sits in one fold only (stratified group k-fold)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is None:
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return [test for _, test in skf.split(np.zeros(len(y)), y)]
    if len(set(groups)) < folds:
        raise ValueError(f"--group-by: {len(set(groups))} groups cannot fill {folds} folds")
    sgkf = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [test for _, test in sgkf.split(np.zeros(len(y)), y, groups)]


def cross_validate(features: dict[str, np.ndarray], y: np.ndarray, genres: list[str], folds: int = 5,
                   seed: int = 0, heads: tuple[str, ...] = HEAD_KINDS, log=None,
                   variants: dict[str, dict[str, np.ndarray]] | None = None, on_fold=None,
                   fold_features=None, groups: list[str] | None = None) -> dict:
    """Out-of-fold probabilities for each pair, then metrics on the pooled predictions.

    Returns ``{"heads": {name: metrics}, "folds": k, "seed": s, "seconds": t, "fold_seconds": [...]}``;
    ``ensemble`` is the mean of every pair's probabilities. ``variants`` (e.g. ``{"int8": {"cnn": x8}}``)
    are other features of the same covers: each fold's heads, fitted on ``features``, also score
    the variant's test rows, which is how a head shipped for one featurizer meets another at
    run time. Their metrics land in ``"variants": {name: {"heads": ...}}``.
    ``on_fold(i, train, test, fitted)`` is called after each fold with its fitted heads by name.
    ``fold_features(i, train, test)`` returns a :class:`Fold`: features that replace ``features``
    for fold ``i`` (a featurizer fine-tuned on that fold's training rows only), heads already fitted
    there (that network's own genre layer), and optionally the training rows to fit on. The other
    training rows then choose blend weights (:func:`select_blend`), and the ``blend`` of every
    head scores the test rows; the weights land in ``"blend_weights"``, one dict per fold.
    """
    y = np.asarray(y)
    if np.bincount(y).min() < folds:
        raise ValueError(f"every genre needs at least {folds} covers for {folds}-fold CV; "
                         f"counts: {dict(zip(genres, np.bincount(y).tolist()))}")
    start = time.perf_counter()
    oof: dict[str, np.ndarray] = {}
    oof_variants: dict[str, dict[str, np.ndarray]] = {}
    fold_scores: dict[str, list[float]] = {}
    fold_seconds = []
    blend_weights = []

    def empty() -> np.ndarray:
        return np.zeros((len(y), len(genres)), dtype=np.float32)

    def record(i: int, name: str, fitted, fold: Fold, test: np.ndarray, t0: float) -> None:
        oof.setdefault(name, empty())[test] = fitted.predict_proba(fold.features[fitted.featurizer][test])
        for v, swapped in fold.variants.items():
            x = swapped.get(fitted.featurizer, fold.features[fitted.featurizer])
            oof_variants.setdefault(v, {}).setdefault(name, empty())[test] = fitted.predict_proba(x[test])
        score = metrics(y[test], oof[name][test].argmax(1), genres)["balanced_accuracy"]
        fold_scores.setdefault(name, []).append(score)
        if log:
            log(f"fold {i + 1}/{folds} {name}: balanced accuracy {fold_scores[name][-1]:.3f} "
                f"({time.perf_counter() - t0:.1f}s)")

    splits = stratified_folds(y, folds, seed, groups)
    for i, test in enumerate(splits):
        t_fold = time.perf_counter()
        train = np.setdiff1d(np.arange(len(y)), test)
        fold = fold_features(i, train, test) if fold_features else Fold(features, variants=variants or {})
        fitted_heads = dict(fold.prefitted)
        fit = train if fold.fit_rows is None else fold.fit_rows
        for name, fitted in fitted_heads.items():
            record(i, name, fitted, fold, test, time.perf_counter())
        for fkind, x in fold.features.items():
            for hkind in heads:
                t0 = time.perf_counter()
                name = f"{fkind}-{hkind}"
                fitted = fitted_heads[name] = fit_head(hkind, fkind, x[fit], y[fit], len(genres), seed)
                record(i, name, fitted, fold, test, t0)
        ens = np.mean([oof[n][test] for n in fitted_heads], axis=0)
        fold_scores.setdefault("ensemble", []).append(metrics(y[test], ens.argmax(1), genres)["balanced_accuracy"])
        holdout = np.setdiff1d(train, fit)
        if len(holdout):
            weights = select_blend({n: f.predict_proba(fold.features[f.featurizer][holdout])
                                    for n, f in fitted_heads.items()}, y[holdout])
            blend_weights.append(weights)
            for target in (oof, *oof_variants.values()):
                target.setdefault(BLEND, empty())[test] = sum(w * target[n][test] for n, w in weights.items())
            fold_scores.setdefault(BLEND, []).append(
                metrics(y[test], oof[BLEND][test].argmax(1), genres)["balanced_accuracy"])
            if log:
                log(f"fold {i + 1}/{folds} blend {weights}: balanced accuracy {fold_scores[BLEND][-1]:.3f}")
        if on_fold:
            on_fold(i, train, test, fitted_heads)
        fold_seconds.append(round(time.perf_counter() - t_fold, 1))
    for target in (oof, *oof_variants.values()):
        target["ensemble"] = np.mean([p for n, p in target.items() if n != BLEND], axis=0)
    results = {}
    for name, proba in oof.items():
        m = metrics(y, proba.argmax(1), genres)
        m["balanced_accuracy_per_fold"] = fold_scores[name]
        m["accuracy_per_fold"] = [round(float((proba[t].argmax(1) == y[t]).mean()), 4) for t in splits]
        results[name] = m
    out = {"heads": results, "genres": genres, "folds": folds, "seed": seed, "images": int(len(y)),
           "grouped": groups is not None,
           "seconds": round(time.perf_counter() - start, 1), "fold_seconds": fold_seconds}
    if blend_weights:
        out["blend_weights"] = blend_weights
    if oof_variants:
        out["variants"] = {v: {"heads": {n: metrics(y, p.argmax(1), genres) for n, p in voof.items()}}
                           for v, voof in oof_variants.items()}
    return out


def best_head(cv: dict) -> str:
    return max(cv["heads"], key=lambda n: cv["heads"][n]["balanced_accuracy"])
