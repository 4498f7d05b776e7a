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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scorer.calibration import ECE_BINS, apply_temperature, expected_calibration_error, log_loss, reliability

from .heads import HEAD_KINDS, fit_head

FEATURIZER_KINDS = ("cnn", "colour")
BLEND = "blend"
ENSEMBLE = "ensemble"
#: a genre takes part in a cross-source split when both sides have at least this many covers of it
CROSS_MIN_COVERS = 20


@dataclass
class Fold:
    """What one split of :func:`cross_validate` works with, when it is not the same for every split."""

    features: dict[str, np.ndarray]
    prefitted: dict = field(default_factory=dict)  # heads already fitted on ``fit_rows``, by name
    fit_rows: np.ndarray | None = None  # training rows to fit on; the other training rows choose the blend
    #: other features of the same covers, by variant name and featurizer kind (int8, flip TTA):
    #: the heads fitted on ``features`` score them too
    variants: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


@dataclass
class Split:
    """Training and test rows of one fold (``fold1``…) or cross-source split (``cross:A→B``)."""

    name: str
    train: np.ndarray
    test: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def is_fold(self) -> bool:
        return self.name.startswith("fold")


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

    if groups is None or len(set(groups)) == len(groups):  # no group of two: plain stratified k-fold
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return [test for _, test in skf.split(np.zeros(len(y)), y)]
    if len(set(groups)) < folds:
        raise ValueError(f"{len(set(groups))} groups (artists, near-duplicate clusters) cannot fill {folds} folds")
    sgkf = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [test for _, test in sgkf.split(np.zeros(len(y)), y, groups)]


def cv_splits(y: np.ndarray, folds: int, seed: int, groups: list[str] | None = None) -> list[Split]:
    n = len(y)
    return [Split(f"fold{i + 1}", np.setdiff1d(np.arange(n), test), test)
            for i, test in enumerate(stratified_folds(y, folds, seed, groups))]


def cross_source_splits(y: np.ndarray, genres: list[str], sources: list[str] | None,
                        groups: list[str] | None = None, min_covers: int = CROSS_MIN_COVERS) -> list[Split]:
    """Per input set B sharing genres with the others: test on B's covers of those genres, train on
    every other cover except those of a group (artist, near-duplicate cluster) among the test covers."""
    if not sources or len(set(sources)) < 2:
        return []
    y, src = np.asarray(y), np.asarray(sources)
    names = sorted(set(sources))
    out = []
    for b in names:
        counts_b = np.bincount(y[src == b], minlength=len(genres))
        counts_rest = np.bincount(y[src != b], minlength=len(genres))
        shared = [g for g in range(len(genres)) if counts_b[g] >= min_covers and counts_rest[g] >= min_covers]
        if not shared:
            continue
        held = (src == b) & np.isin(y, shared)
        test = np.flatnonzero(held)
        banned = {groups[i] for i in test} if groups is not None else set()
        train = np.array([i for i in range(len(y)) if not held[i] and (groups is None or groups[i] not in banned)],
                         dtype=np.int64)
        others = [s for s in names if s != b]
        out.append(Split(f"cross:{'+'.join(others)}→{b}", train, test,
                         {"train_sources": others, "test_source": b, "genres": [genres[g] for g in shared],
                          "test_covers": int(len(test)),
                          "left_out_of_training": int(len(y) - len(test) - len(train))}))
    return out


def cross_validate(features: dict[str, np.ndarray], y: np.ndarray, genres: list[str], folds: int = 5,
                   seed: int = 0, heads: tuple[str, ...] = HEAD_KINDS, log=None,
                   variants: dict[str, dict[str, np.ndarray]] | None = None, on_fold=None,
                   fold_features=None, groups: list[str] | None = None, sources: list[str] | None = None,
                   cross_source: bool = True, resume_dir: Path | None = None, balanced: bool = True,
                   only: set[str] | None = None) -> dict:
    """Out-of-fold probabilities for each pair, then metrics on the pooled predictions.

    Returns ``{"heads": {name: metrics}, "folds": k, "seed": s, "seconds": t, "fold_seconds": [...]}``;
    ``ensemble`` is the mean of every pair's probabilities. ``variants`` (e.g. ``{"int8": {"cnn": x8}}``)
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
    """
    y = np.asarray(y)
    if groups is None and np.bincount(y, minlength=len(genres)).min() < folds:
        raise ValueError(f"every genre needs at least {folds} covers for {folds}-fold CV; "
                         f"counts: {dict(zip(genres, np.bincount(y, minlength=len(genres)).tolist()))}")
    start = time.perf_counter()
    splits = cv_splits(y, folds, seed, groups)
    extra = cross_source_splits(y, genres, sources, groups) if cross_source else []
    todo = [s for s in (*splits, *extra) if only is None or s.name in only]
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
                            on_fold if split.is_fold else None, k)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        if resume_dir:
            _save_split(resume_dir, split, result)
        done[split.name] = result
    if only is not None:
        return {"splits": {s.name: _split_summary(done[s.name], y, genres, s) for s in todo},
                "genres": genres, "folds": folds, "seed": seed, "images": int(len(y)),
                "seconds": round(time.perf_counter() - start, 1)}
    return _pooled(splits, extra, done, y, genres, folds, seed, groups, sources, start)


def _run_split(split: Split, fold: Fold, y: np.ndarray, genres: list[str], heads: tuple[str, ...], seed: int,
               balanced: bool, log, on_fold, index: int) -> dict:
    """Fit every head on the split's training rows; their probabilities for its test rows."""
    test, train = split.test, split.train
    fit = train if fold.fit_rows is None else fold.fit_rows
    probs: dict[str, np.ndarray] = {}
    variant_probs: dict[str, dict[str, np.ndarray]] = {v: {} for v in fold.variants}
    fitted_heads = dict(fold.prefitted)
    present = np.bincount(y[fit], minlength=len(genres)) > 0
    missing = [g for g, p in zip(genres, present) if not p]
    if missing and log:
        log(f"{split.name}: no training covers of {', '.join(missing)}: every head gives them probability 0")

    def record(name: str, fitted, t0: float) -> None:
        probs[name] = fitted.predict_proba(fold.features[fitted.featurizer][test])
        for v, swapped in fold.variants.items():
            x = swapped.get(fitted.featurizer, fold.features[fitted.featurizer])
            variant_probs[v][name] = fitted.predict_proba(x[test])
        if log:
            score = metrics(y[test], probs[name].argmax(1), genres)["balanced_accuracy"]
            log(f"{split.name} {name}: balanced accuracy {score:.3f} ({time.perf_counter() - t0:.1f}s)")

    for name, fitted in fold.prefitted.items():
        record(name, fitted, time.perf_counter())
    for fkind, x in fold.features.items():
        for hkind in heads:
            t0 = time.perf_counter()
            name = f"{fkind}-{hkind}"
            fitted = fitted_heads[name] = fit_head(hkind, fkind, x[fit], y[fit], len(genres), seed, balanced=balanced)
            record(name, fitted, t0)
    members = list(fitted_heads)
    for target in (probs, *variant_probs.values()):
        target[ENSEMBLE] = np.mean([target[n] for n in members], axis=0)
    weights = None
    holdout = np.setdiff1d(train, fit)
    if len(holdout):
        weights = select_blend({n: f.predict_proba(fold.features[f.featurizer][holdout])
                                for n, f in fitted_heads.items()}, y[holdout])
        for target in (probs, *variant_probs.values()):
            target[BLEND] = sum(w * target[n] for n, w in weights.items()).astype(np.float32)
        if log:
            score = metrics(y[test], probs[BLEND].argmax(1), genres)["balanced_accuracy"]
            log(f"{split.name} blend {weights}: balanced accuracy {score:.3f}")
    if on_fold:
        on_fold(index, train, test, fitted_heads)
    return {"probs": probs, "variants": variant_probs, "blend_weights": weights, "missing_genres": missing,
            "fit_rows": int(len(fit))}


def _split_path(resume_dir: Path, split: Split) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in split.name)
    return Path(resume_dir) / f"{safe}.npz"


def _save_split(resume_dir: Path, split: Split, result: dict) -> None:
    path = _split_path(resume_dir, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"p/{n}": p for n, p in result["probs"].items()}
    arrays |= {f"v/{v}/{n}": p for v, ps in result["variants"].items() for n, p in ps.items()}
    meta = {k: v for k, v in result.items() if k not in ("probs", "variants")}
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
            seed: int, groups, sources, start: float) -> dict:
    names = list(done[splits[0].name]["probs"])

    def empty() -> np.ndarray:
        return np.zeros((len(y), len(genres)), dtype=np.float32)

    oof = {n: empty() for n in names}
    variant_names = list(done[splits[0].name]["variants"])
    oof_variants = {v: {n: empty() for n in done[splits[0].name]["variants"][v]} for v in variant_names}
    fold_of = np.zeros(len(y), dtype=np.int64)
    for i, s in enumerate(splits):
        r = done[s.name]
        fold_of[s.test] = i
        for n in names:
            oof[n][s.test] = r["probs"][n]
        for v in variant_names:
            for n in oof_variants[v]:
                oof_variants[v][n][s.test] = r["variants"][v][n]
    results = {}
    for name, proba in oof.items():
        m = metrics(y, proba.argmax(1), genres)
        m["balanced_accuracy_per_fold"] = [metrics(y[s.test], proba[s.test].argmax(1), genres)["balanced_accuracy"]
                                           for s in splits]
        m["accuracy_per_fold"] = [round(float((proba[s.test].argmax(1) == y[s.test]).mean()), 4) for s in splits]
        results[name] = m
    calibration = {n: calibrate(p, y, fold_of) for n, p in oof.items()}
    out = {"heads": results, "genres": genres, "folds": folds, "seed": seed, "images": int(len(y)),
           "grouped": groups is not None,
           "seconds": round(time.perf_counter() - start, 1),
           "fold_seconds": [done[s.name].get("seconds") for s in splits],
           "missing_genres": [done[s.name]["missing_genres"] for s in splits],
           "calibration": {"method": "temperature scaling of log-probabilities, fitted on out-of-fold predictions",
                           "bins": ECE_BINS, "heads": calibration}}
    if any(done[s.name].get("blend_weights") for s in splits):
        out["blend_weights"] = [done[s.name]["blend_weights"] for s in splits]
    if oof_variants:
        out["variants"] = {v: {"heads": {n: metrics(y, p.argmax(1), genres) for n, p in voof.items()}}
                           for v, voof in oof_variants.items()}
    if sources is not None and len(set(sources)) > 1:
        out["by_source"] = by_source(oof, y, genres, sources, calibration)
    if extra:
        out["cross_source"] = {s.name: cross_source_figures(s, done[s.name], oof, y, genres, fold_of)
                               for s in extra}
    return out


def calibrate(proba: np.ndarray, y: np.ndarray, fold_of: np.ndarray) -> dict:
    """Temperature scaling of one head, judged honestly: the ``after`` figures apply, to each fold,
    a calibration fitted on the other folds' out-of-fold predictions. The shipped one is fitted on
    all of them; it is used only if it lowers that cross-fitted log loss."""
    after = np.empty_like(proba)
    for f in np.unique(fold_of):
        rows = fold_of == f
        after[rows] = apply_temperature(proba[rows], *fit_temperature(proba[~rows], y[~rows]))
    before_loss, after_loss = log_loss(proba, y), log_loss(after, y)
    use = after_loss < before_loss
    t, mix = fit_temperature(proba, y) if use else (1.0, 0.0)
    return {"temperature": round(t, 4), "mix": round(mix, 5), "used": bool(use),
            "log_loss_before": round(before_loss, 4), "log_loss_after": round(after_loss if use else before_loss, 4),
            "ece_before": round(expected_calibration_error(proba, y), 4),
            "ece_after": round(expected_calibration_error(after if use else proba, y), 4),
            "reliability_before": reliability(proba, y), "reliability_after": reliability(after if use else proba, y)}


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(T, mix)`` minimising the log loss of :func:`apply_temperature` on ``y``; ``mix`` is
    fitted only for heads that give exact zeros (0 otherwise)."""
    from scipy.optimize import minimize, minimize_scalar

    if not len(y):
        return 1.0, 0.0
    lo, hi = np.log(0.05), np.log(20.0)
    if (np.asarray(proba) > 0).all():
        res = minimize_scalar(lambda lt: log_loss(apply_temperature(proba, float(np.exp(lt))), y),
                              bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
        return float(np.exp(res.x)), 0.0
    res = minimize(lambda v: log_loss(apply_temperature(proba, float(np.exp(v[0])), float(v[1])), y),
                   x0=np.array([0.0, 0.05]), bounds=[(lo, hi), (0.0, 0.5)], method="Nelder-Mead",
                   options={"xatol": 1e-5, "fatol": 1e-7, "maxiter": 2000})
    return float(np.exp(res.x[0])), float(res.x[1])


def by_source(oof: dict[str, np.ndarray], y: np.ndarray, genres: list[str], sources: list[str],
              calibration: dict) -> dict:
    """Per input set: each head's out-of-fold figures on that set's covers alone (its own genres)."""
    src = np.asarray(sources)
    out = {}
    for s in sorted(set(sources)):
        rows = src == s
        present = [g for g in range(len(genres)) if (y[rows] == g).any()]
        heads = {}
        for name, proba in oof.items():
            m = metrics(y[rows], proba[rows].argmax(1), genres)
            calibrated = apply_temperature(proba[rows], calibration[name]["temperature"], calibration[name]["mix"])
            heads[name] = {"accuracy": round(m["accuracy"], 4), "balanced_accuracy": round(m["balanced_accuracy"], 4),
                           "recall": {genres[g]: round(m["recall"][genres[g]], 4) for g in present},
                           "ece": round(expected_calibration_error(calibrated, y[rows]), 4)}
        out[s] = {"covers": int(rows.sum()), "genres": [genres[g] for g in present], "heads": heads}
    return out


def cross_source_figures(split: Split, result: dict, oof: dict[str, np.ndarray], y: np.ndarray,
                         genres: list[str], fold_of: np.ndarray) -> dict:
    """A cross-source split's figures beside the in-CV figures of the same covers (the gap).

    The calibration applied here is fitted on the out-of-fold predictions of the other covers
    only, so it has never seen the test store's covers of these genres either."""
    test = split.test
    shared = [genres.index(g) for g in split.info["genres"]]
    yt = y[test]
    others = np.setdiff1d(np.arange(len(y)), test)
    heads = {}
    for name, proba in result["probs"].items():
        pred = proba.argmax(1)
        recall = {genres[g]: float((pred[yt == g] == g).mean()) for g in shared}
        in_cv = oof[name][test].argmax(1)
        in_cv_recall = {genres[g]: float((in_cv[yt == g] == g).mean()) for g in shared}
        t, mix = fit_temperature(oof[name][others], y[others])
        predicted = Counter(genres[p] for p in pred)
        heads[name] = {
            "balanced_accuracy": round(float(np.mean(list(recall.values()))), 4),
            "recall": {g: round(r, 4) for g, r in recall.items()},
            "in_cv_balanced_accuracy": round(float(np.mean(list(in_cv_recall.values()))), 4),
            "in_cv_recall": {g: round(r, 4) for g, r in in_cv_recall.items()},
            "predicted_share": {g: round(predicted[g] / len(pred), 4) for g in genres if predicted[g]},
            "ece": round(expected_calibration_error(apply_temperature(proba, t, mix), yt), 4),
            "ece_uncalibrated": round(expected_calibration_error(proba, yt), 4),
        }
        heads[name]["gap"] = round(heads[name]["in_cv_balanced_accuracy"] - heads[name]["balanced_accuracy"], 4)
    return {**split.info, "seconds": result.get("seconds"), "missing_genres": result["missing_genres"],
            "heads": heads}


def best_head(cv: dict) -> str:
    return max(cv["heads"], key=lambda n: cv["heads"][n]["balanced_accuracy"])
