"""Leak-free evaluation of every featurizer+head pair and their ensemble.

Stratified (group) k-fold CV gives out-of-fold probabilities for every cover; pooled, they give
the figures, the calibration (temperature per head, fitted on them) and, per input set, the
per-source figures. Cross-source splits train without one store's covers of the genres that
two stores share, and test on those covers: the store confound, measured.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

import numpy as np

from scorer.heads.calibration import ECE_BINS
from scorer.heads.familiarity import Familiarity
from scorer.training.calibration import OUT_OF_FOLD_ECE, Rows, calibrate, fit_calibration, precision_at, weighted_parts
from scorer.training.figures import (
    HEAD_CV_TOLERANCE,
    HELDOUT_TIE,
    _quartiles,
    best_head,
    by_source,
    heldout_figures,
    heldout_summary,
    metrics,
)
from scorer.training.heads import HEAD_KINDS, fit_head
from scorer.training.splits import (
    CROSS_MIN_COVERS,
    Fold,
    Split,
    cross_source_splits,
    cv_splits,
    heldout_splits,
    stratified_folds,
    unknown_genre_splits,
)

FEATURIZER_KINDS = ("cnn", "colour")
BLEND = "blend"
ENSEMBLE = "ensemble"


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
        assert best is not None  # probs has a member at least
        chosen[best[1]] += 1
        current = best[2]
    return {n: round(c / rounds, 4) for n, c in sorted(chosen.items(), key=lambda kv: -kv[1])}


def cross_validate(features: dict[str, np.ndarray], y: np.ndarray, genres: list[str], folds: int = 5,
                   seed: int = 0, heads: tuple[str, ...] = HEAD_KINDS, log=None,
                   variants: dict[str, dict[str, np.ndarray]] | None = None, on_fold=None,
                   fold_features=None, groups: list[str] | None = None, sources: list[str] | None = None,
                   cross_source: bool = True, resume_dir: Path | None = None, balanced: bool = True,
                   only: set[str] | None = None, collections: list[str] | None = None,
                   unknown_genres: bool = False) -> dict:
    """Out-of-fold probabilities for each pair, then metrics on the pooled predictions.

    Returns ``{"heads": {name: metrics}, "folds": k, "seed": s, "seconds": t, "fold_seconds": [...]}``;
    ``ensemble`` is the mean of every pair's probabilities; ``heads`` are head kinds fitted on every featurizer
    (``knn``) or pairs (``cnn-knn``, :func:`head_pairs`). ``variants`` (e.g. ``{"int8": {"cnn": x8}}``)
    are other features of the same covers: each fold's heads, fitted on ``features``, also score
    the variant's test rows, which is how a head shipped for one featurizer meets another at
    run time. Their metrics land in ``"variants": {name: {"heads": ...}}``.
    ``on_fold(i, train, test, fitted)`` is called after each fold with its fitted heads by name.
    ``fold_features(split, train, test)`` returns a :class:`Fold`: features that replace ``features``
    for that split (a featurizer fine-tuned on its training rows only), heads already fitted
    there (that network's own genre layer), and optionally the training rows to fit on. The other
    training rows then choose blend weights (:func:`select_blend`), and the ``blend`` of every
    head scores the test rows; the weights land in ``"blend_weights"``, one dict per fold.

    A genre with no covers among a split's training rows (a genre of few artists) is still known
    to every head, which gives it probability 0 there; such gaps are listed per fold under
    ``"missing_genres"``. With ``sources`` (each cover's input set), the figures are also given per
    source, and ``cross_source`` adds the splits of :func:`cross_source_splits`. With
    ``resume_dir``, each finished split is saved there and a rerun picks it up instead of
    computing it again. ``only`` (split names) computes just those splits and reports each alone.
    ``unknown_genres`` adds :func:`unknown_genre_splits` (under ``"unknown_genres"``).
    """
    y = np.asarray(y)
    if groups is None and np.bincount(y, minlength=len(genres)).min() < folds:
        raise ValueError(f"every genre needs at least {folds} covers for {folds}-fold CV; "
                         f"counts: {dict(zip(genres, np.bincount(y, minlength=len(genres)).tolist()))}")
    start = time.perf_counter()
    splits = cv_splits(y, folds, seed, groups)
    extra = heldout_splits(y, genres, collections, sources, groups) if cross_source else []
    unknown = unknown_genre_splits(y, genres, groups) if unknown_genres else []
    todo = [s for s in (*splits, *extra, *unknown) if only is None or s.name in only]
    done: dict[str, dict] = {}
    for k, split in enumerate(todo):
        saved = _load_split(resume_dir, split) if resume_dir else None
        if saved is not None:
            if log:
                log(f"{split.name}: finished in an earlier run, read from {resume_dir}")
            done[split.name] = saved
            continue
        t0 = time.perf_counter()
        fold = (fold_features(split, split.train, split.test) if fold_features
                else Fold(features, variants=variants or {}))
        result = _run_split(split, fold, y, genres, heads, seed, balanced, log,
                            on_fold if split.is_fold else None, k, groups)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        if resume_dir:
            _save_split(resume_dir, split, result)
        done[split.name] = result
    if only is not None:
        return {"splits": {s.name: _split_summary(done[s.name], y, genres, s) for s in todo},
                "genres": genres, "folds": folds, "seed": seed, "images": int(len(y)),
                "seconds": round(time.perf_counter() - start, 1)}
    return _pooled(splits, extra, done, y, genres, folds, seed, groups, sources, start, unknown)


def head_pairs(heads: tuple[str, ...], featurizers: list[str]) -> list[tuple[str, str]]:
    """(featurizer, head kind) pairs to fit: a kind in ``heads`` (``knn``) on every featurizer, a pair
    (``cnn-knn``) on its own; in featurizer order, then in the order of ``heads``."""
    return [(f, h) for f in featurizers for h in dict.fromkeys(k.split("-")[-1] for k in heads)
            if h in heads or f"{f}-{h}" in heads]


def _run_split(split: Split, fold: Fold, y: np.ndarray, genres: list[str], heads: tuple[str, ...], seed: int,
               balanced: bool, log, on_fold, index: int, groups: list[str] | None = None) -> dict:
    """Fit every head on the split's training rows; their probabilities for its test rows, and the test
    rows' familiarity (on the scale of the covers the heads were fitted on)."""
    test, train = split.test, split.train
    fit = train if fold.fit_rows is None else fold.fit_rows
    familiarity = None
    if "cnn" in fold.features:
        scale = Familiarity.fit(fold.features["cnn"][fit], None if groups is None else [groups[i] for i in fit])
        familiarity = scale(fold.features["cnn"][test])
    probs: dict[str, np.ndarray] = {}
    variant_probs: dict[str, dict[str, np.ndarray]] = {v: {} for v in fold.variants}
    fitted_heads = dict(fold.prefitted)
    present = np.bincount(y[fit], minlength=len(genres)) > 0
    missing = [g for g, p in zip(genres, present) if not p]
    left_out = split.info.get("genre")  # an unknown-genre split leaves one out on purpose
    if log and [g for g in missing if g != left_out]:
        log(f"{split.name}: no training covers of {', '.join(missing)}: every head gives them probability 0")

    def record(name: str, fitted, t0: float) -> None:
        probs[name] = fitted.predict_proba(fold.features[fitted.featurizer][test])
        for v, swapped in fold.variants.items():
            x = swapped.get(fitted.featurizer, fold.features[fitted.featurizer])
            variant_probs[v][name] = fitted.predict_proba(x[test])
        if log and left_out:
            sure = float((probs[name].max(axis=1) >= 0.5).mean())
            log(f"{split.name} {name}: {sure:.0%} of its covers get 0.5 or more for a genre they are not "
                f"(uncalibrated; {time.perf_counter() - t0:.1f}s)")
        elif log:
            score = metrics(y[test], probs[name].argmax(1), genres)["balanced_accuracy"]
            log(f"{split.name} {name}: balanced accuracy {score:.3f} ({time.perf_counter() - t0:.1f}s)")

    for name, fitted in fold.prefitted.items():
        record(name, fitted, time.perf_counter())
    for fkind, hkind in head_pairs(heads, list(fold.features)):
        t0 = time.perf_counter()
        x = fold.features[fkind]
        fitted = fitted_heads[f"{fkind}-{hkind}"] = fit_head(hkind, fkind, x[fit], y[fit], len(genres), seed,
                                                             balanced=balanced)
        record(f"{fkind}-{hkind}", fitted, t0)
    members = list(fitted_heads)
    for target in (probs, *variant_probs.values()):
        target[ENSEMBLE] = np.mean([target[n] for n in members], axis=0)
    weights = None
    holdout = np.setdiff1d(train, fit)
    if len(holdout):
        weights = select_blend({n: f.predict_proba(fold.features[f.featurizer][holdout])
                                for n, f in fitted_heads.items()}, y[holdout])
        for target in (probs, *variant_probs.values()):
            target[BLEND] = cast(np.ndarray, sum(w * target[n] for n, w in weights.items())).astype(np.float32)
        if log:
            score = metrics(y[test], probs[BLEND].argmax(1), genres)["balanced_accuracy"]
            log(f"{split.name} blend {weights}: balanced accuracy {score:.3f}")
    if on_fold:
        on_fold(index, train, test, fitted_heads)
    return {"probs": probs, "variants": variant_probs, "blend_weights": weights, "missing_genres": missing,
            "fit_rows": int(len(fit)), "familiarity": familiarity}


def _split_path(resume_dir: Path, split: Split) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in split.name)
    return Path(resume_dir) / f"{safe}.npz"


def _save_split(resume_dir: Path, split: Split, result: dict) -> None:
    path = _split_path(resume_dir, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"p/{n}": p for n, p in result["probs"].items()}
    arrays |= {f"v/{v}/{n}": p for v, ps in result["variants"].items() for n, p in ps.items()}
    if result.get("familiarity") is not None:
        arrays["familiarity"] = result["familiarity"]
    meta = {k: v for k, v in result.items() if k not in ("probs", "variants", "familiarity")}
    meta["test"] = split.test.tolist()
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, path)


def _load_split(resume_dir: Path, split: Split) -> dict | None:
    path = _split_path(resume_dir, split)
    try:
        z = np.load(path, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
    except (FileNotFoundError, OSError, ValueError, KeyError):
        return None
    if meta.pop("test") != split.test.tolist():
        return None  # another split under the same name: compute it again
    probs = {k[2:]: z[k] for k in z.files if k.startswith("p/")}
    meta["familiarity"] = z["familiarity"] if "familiarity" in z.files else None
    variants: dict[str, dict] = {}
    for k in z.files:
        if k.startswith("v/"):
            _, v, n = k.split("/", 2)
            variants.setdefault(v, {})[n] = z[k]
    return {**meta, "probs": probs, "variants": variants}


def _split_summary(result: dict, y: np.ndarray, genres: list[str], split: Split) -> dict:
    return {"heads": {n: metrics(y[split.test], p.argmax(1), genres) for n, p in result["probs"].items()},
            "missing_genres": result["missing_genres"], "seconds": result.get("seconds"), **split.info}


def _pooled(splits: list[Split], extra: list[Split], done: dict, y: np.ndarray, genres: list[str], folds: int,
            seed: int, groups, sources, start: float, unknown: list[Split] | None = None) -> dict:
    names = list(done[splits[0].name]["probs"])

    def empty() -> np.ndarray:
        return np.zeros((len(y), len(genres)), dtype=np.float32)

    oof = {n: empty() for n in names}
    variant_names = list(done[splits[0].name]["variants"])
    oof_variants = {v: {n: empty() for n in done[splits[0].name]["variants"][v]} for v in variant_names}
    fold_of = np.zeros(len(y), dtype=np.int64)
    with_familiarity = all(done[s.name].get("familiarity") is not None for s in (*splits, *extra))
    familiarity = np.zeros(len(y), dtype=np.float32) if with_familiarity else None
    for i, s in enumerate(splits):
        r = done[s.name]
        fold_of[s.test] = i
        if familiarity is not None:
            familiarity[s.test] = r["familiarity"]
        for n in names:
            oof[n][s.test] = r["probs"][n]
        for v in variant_names:
            for n in oof_variants[v]:
                oof_variants[v][n][s.test] = r["variants"][v][n]
    calibration = {}
    for n in names:
        held = [Rows(s.name, done[s.name]["probs"][n], y[s.test], s.test,
                     done[s.name]["familiarity"] if with_familiarity else None) for s in extra]
        calibration[n] = calibrate(Rows("out-of-fold", oof[n], y, np.arange(len(y)), familiarity, fold_of), held)
    results = {}
    for name, proba in oof.items():
        m = metrics(y, proba.argmax(1), genres)
        m["balanced_accuracy_per_fold"] = [metrics(y[s.test], proba[s.test].argmax(1), genres)["balanced_accuracy"]
                                           for s in splits]
        m["accuracy_per_fold"] = [round(float((proba[s.test].argmax(1) == y[s.test]).mean()), 4) for s in splits]
        m["precision_at"] = precision_at(calibration[name]["after_oof"], y)
        results[name] = m
    out: dict[str, Any] = {"heads": results, "genres": genres, "folds": folds, "seed": seed, "images": int(len(y)),
           "grouped": groups is not None,
           "seconds": round(time.perf_counter() - start, 1),
           "fold_seconds": [done[s.name].get("seconds") for s in splits],
           "missing_genres": [done[s.name]["missing_genres"] for s in splits],
           "calibration": {"method": CALIBRATION_METHOD if with_familiarity else PLAIN_CALIBRATION_METHOD,
                           "bins": ECE_BINS, **({"out_of_fold_ece_limit": OUT_OF_FOLD_ECE} if extra else {}),
                           "heads": {n: {k: v for k, v in c.items() if not k.startswith("after_")}
                                     for n, c in calibration.items()}}}
    if familiarity is not None:
        out["familiarity"] = {"out_of_fold": _quartiles(familiarity),
                              **({"heldout": {s.name: _quartiles(done[s.name]["familiarity"]) for s in extra}}
                                 if extra else {})}
    if any(done[s.name].get("blend_weights") for s in splits):
        out["blend_weights"] = [done[s.name]["blend_weights"] for s in splits]
    if oof_variants:
        out["variants"] = {v: {"heads": {n: metrics(y, p.argmax(1), genres) for n, p in voof.items()}}
                           for v, voof in oof_variants.items()}
    if sources is not None and len(set(sources)) > 1:
        out["by_source"] = by_source(oof, y, genres, sources, {n: c["after_oof"] for n, c in calibration.items()})
    if extra:
        out["heldout"] = {s.name: heldout_figures(s, done[s.name], oof, y, genres,
                                                  {n: c["after_heldout"][s.name] for n, c in calibration.items()})
                          for s in extra}
        out["heldout_summary"] = heldout_summary(out["heldout"])
    if unknown:
        oof_rows = {n: Rows("out-of-fold", oof[n], y, np.arange(len(y)), familiarity, fold_of) for n in names}
        held_rows = {n: [Rows(s.name, done[s.name]["probs"][n], y[s.test], s.test,
                              done[s.name]["familiarity"] if with_familiarity else None) for s in extra] for n in names}
        out["unknown_genres"] = unknown_genre_figures(unknown, done, y, oof_rows, held_rows,
                                                      {n: c.get("heldout_weight", 0.0) for n, c in calibration.items()})
    return out


def unknown_genre_figures(unknown: list[Split], done: dict, y: np.ndarray, oof: dict[str, Rows],
                          heldout: dict[str, list[Rows]], heldout_weight: dict[str, float],
                          thresholds: tuple[float, ...] = (0.5, 0.7)) -> dict:
    """Per head: the share of a left-out genre's covers whose top probability reaches each threshold, raw,
    with a plain temperature fitted on out-of-fold predictions (``out_of_fold_temperature``: how models
    were calibrated before held-out collections were), and with the shipped kind of calibration
    (``calibrated``). Both calibrations are fitted without any cover of that genre."""
    per_genre: dict[str, dict] = {}
    for s in unknown:
        r = done[s.name]
        genre = s.info["genre"]
        heads = {}
        for n, proba in r["probs"].items():
            def without(rows: Rows, covers=s.test) -> Rows:
                return rows.take(~np.isin(rows.covers, covers))

            plain = fit_calibration([(without(Rows("oof", oof[n].proba, y, oof[n].covers, None, oof[n].fold)), 1.0)])
            shipped = fit_calibration(weighted_parts(without(oof[n]), [without(h) for h in heldout[n]],
                                                     heldout_weight[n]))
            fam = r.get("familiarity") if oof[n].familiarity is not None else None
            heads[n] = {kind: {f"{t:g}": round(float((p.max(axis=1) >= t).mean()), 4) for t in thresholds}
                        for kind, p in (("raw", proba), ("out_of_fold_temperature", plain.apply(proba)),
                                        ("calibrated", shipped.apply(proba, fam)))}
        per_genre[genre] = {**s.info, **({"familiarity": _quartiles(r["familiarity"])}
                                          if r.get("familiarity") is not None else {}), "heads": heads}
    names = list(next(iter(per_genre.values()))["heads"])
    mean = {n: {kind: {t: round(float(np.mean([g["heads"][n][kind][t] for g in per_genre.values()])), 4)
                       for t in next(iter(per_genre.values()))["heads"][n][kind]}
                for kind in ("raw", "out_of_fold_temperature", "calibrated")} for n in names}
    return {"genres": per_genre, "mean": mean}


CALIBRATION_METHOD = ("temperature scaling of log-probabilities, the temperature growing as familiarity falls "
                      "(T(f) = temperature * exp(slope * (1 - f))), fitted on out-of-fold and held-out-collection "
                      "predictions")
PLAIN_CALIBRATION_METHOD = "temperature scaling of log-probabilities, fitted on out-of-fold predictions"


__all__ = [  # what the other modules and the tests take from here, wherever it is defined
    "BLEND", "CROSS_MIN_COVERS", "ENSEMBLE", "FEATURIZER_KINDS", "HEAD_CV_TOLERANCE", "HELDOUT_TIE", "Fold", "Split",
    "best_head", "by_source", "cross_source_splits", "cross_validate", "cv_splits", "heldout_figures",
    "heldout_splits", "heldout_summary", "metrics", "select_blend", "stratified_folds", "unknown_genre_figures",
    "unknown_genre_splits",
]
