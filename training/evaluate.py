"""Stratified k-fold evaluation of every featurizer+head pair and their ensemble."""

from __future__ import annotations

import time

import numpy as np

from .heads import HEAD_KINDS, fit_head

FEATURIZER_KINDS = ("cnn", "colour")


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


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [test for _, test in skf.split(np.zeros(len(y)), y)]


def cross_validate(features: dict[str, np.ndarray], y: np.ndarray, genres: list[str], folds: int = 5,
                   seed: int = 0, heads: tuple[str, ...] = HEAD_KINDS, log=None,
                   variants: dict[str, dict[str, np.ndarray]] | None = None, on_fold=None) -> dict:
    """Out-of-fold probabilities for each pair, then metrics on the pooled predictions.

    Returns ``{"heads": {name: metrics}, "folds": k, "seed": s, "seconds": t}``; ``ensemble``
    is the mean of every pair's probabilities. ``variants`` (e.g. ``{"int8": {"cnn": x8}}``)
    are other features of the same covers: each fold's heads, fitted on ``features``, also score
    the variant's test rows, which is how a head shipped for one featurizer meets another at
    run time. Their metrics land in ``"variants": {name: {"heads": ...}}``.
    ``on_fold(i, train, test, fitted)`` is called after each fold with its fitted heads by name.
    """
    y = np.asarray(y)
    if np.bincount(y).min() < folds:
        raise ValueError(f"every genre needs at least {folds} covers for {folds}-fold CV; "
                         f"counts: {dict(zip(genres, np.bincount(y).tolist()))}")
    start = time.perf_counter()
    names = [f"{f}-{h}" for f in features for h in heads]
    oof = {n: np.zeros((len(y), len(genres)), dtype=np.float32) for n in names}
    variants = {v: {**features, **swapped} for v, swapped in (variants or {}).items()}
    oof_variants = {v: {n: np.zeros_like(p) for n, p in oof.items()} for v in variants}
    fold_scores: dict[str, list[float]] = {n: [] for n in [*names, "ensemble"]}
    for i, test in enumerate(stratified_folds(y, folds, seed)):
        train = np.setdiff1d(np.arange(len(y)), test)
        fitted_heads = {}
        for fkind, x in features.items():
            for hkind in heads:
                t0 = time.perf_counter()
                fitted = fitted_heads[f"{fkind}-{hkind}"] = fit_head(hkind, fkind, x[train], y[train], len(genres),
                                                                     seed)
                oof[f"{fkind}-{hkind}"][test] = fitted.predict_proba(x[test])
                for v, vfeatures in variants.items():
                    oof_variants[v][f"{fkind}-{hkind}"][test] = fitted.predict_proba(vfeatures[fkind][test])
                fold_scores[f"{fkind}-{hkind}"].append(
                    metrics(y[test], oof[f"{fkind}-{hkind}"][test].argmax(1), genres)["balanced_accuracy"])
                if log:
                    log(f"fold {i + 1}/{folds} {fkind}-{hkind}: balanced accuracy "
                        f"{fold_scores[f'{fkind}-{hkind}'][-1]:.3f} ({time.perf_counter() - t0:.1f}s)")
        ens = np.mean([oof[n][test] for n in names], axis=0)
        if on_fold:
            on_fold(i, train, test, fitted_heads)
        fold_scores["ensemble"].append(metrics(y[test], ens.argmax(1), genres)["balanced_accuracy"])
    oof["ensemble"] = np.mean([oof[n] for n in names], axis=0)
    results = {}
    for name, proba in oof.items():
        m = metrics(y, proba.argmax(1), genres)
        m["balanced_accuracy_per_fold"] = fold_scores[name]
        results[name] = m
    out = {"heads": results, "genres": genres, "folds": folds, "seed": seed, "images": int(len(y)),
           "seconds": round(time.perf_counter() - start, 1)}
    if variants:
        out["variants"] = {}
        for v, voof in oof_variants.items():
            voof["ensemble"] = np.mean([voof[n] for n in names], axis=0)
            out["variants"][v] = {"heads": {n: metrics(y, p.argmax(1), genres) for n, p in voof.items()}}
    return out


def best_head(cv: dict) -> str:
    return max(cv["heads"], key=lambda n: cv["heads"][n]["balanced_accuracy"])
