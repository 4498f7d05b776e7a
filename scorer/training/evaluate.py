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

from scorer.heads.calibration import ECE_BINS, expected_calibration_error
from scorer.heads.familiarity import Familiarity
from scorer.training.calibration import OUT_OF_FOLD_ECE, Rows, calibrate, fit_calibration, precision_at, weighted_parts
from scorer.training.heads import HEAD_KINDS, fit_head

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

    @property
    def is_unknown_genre(self) -> bool:
        return self.name.startswith("unknown:")


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


def _leave_one_out(y: np.ndarray, genres: list[str], units: list[str], groups: list[str] | None, min_covers: int,
                   name: str, kind: str) -> list[Split]:
    """Per unit B (an input or a collection) sharing genres with the others: test on B's covers of
    those genres, train on every other cover except those of a group (artist, near-duplicate cluster)
    among the test covers."""
    y, unit = np.asarray(y), np.asarray(units)
    names = sorted(set(units))
    out = []
    for b in names:
        counts_b = np.bincount(y[unit == b], minlength=len(genres))
        counts_rest = np.bincount(y[unit != b], minlength=len(genres))
        shared = [g for g in range(len(genres)) if counts_b[g] >= min_covers and counts_rest[g] >= min_covers]
        if not shared:
            continue
        held = (unit == b) & np.isin(y, shared)
        test = np.flatnonzero(held)
        banned = {groups[i] for i in test} if groups is not None else set()
        train = np.array([i for i in range(len(y)) if not held[i] and (groups is None or groups[i] not in banned)],
                         dtype=np.int64)
        others = [s for s in names if s != b]
        trained_on = [s for s in names if (unit[train] == s).any()] if kind == "collection" else others
        split_name = f"heldout:{b}" if kind == "collection" else f"cross:{'+'.join(others)}→{b}"
        out.append(Split(split_name, train, test,
                         {"kind": kind, f"train_{name}s": trained_on, f"test_{name}": b,
                          "genres": [genres[g] for g in shared], "test_covers": int(len(test)),
                          "left_out_of_training": int(len(y) - len(test) - len(train))}))
    return out


def cross_source_splits(y: np.ndarray, genres: list[str], sources: list[str] | None,
                        groups: list[str] | None = None, min_covers: int = CROSS_MIN_COVERS) -> list[Split]:
    """Per input set B sharing genres with the others: test on B's covers of those genres, train on
    every other cover except those of a group (artist, near-duplicate cluster) among the test covers."""
    if not sources or len(set(sources)) < 2:
        return []
    return _leave_one_out(y, genres, sources, groups, min_covers, "source", "input")


def heldout_splits(y: np.ndarray, genres: list[str], collections: list[str] | None,
                   sources: list[str] | None = None, groups: list[str] | None = None,
                   min_covers: int = CROSS_MIN_COVERS) -> list[Split]:
    """Covers from a collection the model did not train on: ``heldout:C`` leaves collection C's covers
    of the genres another collection also holds out of training (with their groups) and tests on
    them; then the input-level :func:`cross_source_splits` whose test covers differ from all of those.

    A collection is an input, or one value of an input's ``source`` column
    (:attr:`scorer.training.dataset.Example.collection`); with neither, there is nothing to hold out."""
    out: list[Split] = []
    if collections and len(set(collections)) > 1:
        out = _leave_one_out(y, genres, collections, groups, min_covers, "collection", "collection")
    seen = {tuple(s.test) for s in out}
    return out + [s for s in cross_source_splits(y, genres, sources, groups, min_covers) if tuple(s.test) not in seen]


def unknown_genre_splits(y: np.ndarray, genres: list[str], groups: list[str] | None = None,
                         min_covers: int = CROSS_MIN_COVERS) -> list[Split]:
    """``unknown:G``: train without genre G (and without every cover in a group with one of its covers), test
    on G's covers, which the model then cannot get right: how sure is it of covers of a genre it does not
    know? Genres of fewer than ``min_covers`` covers, and sets of fewer than three genres, have none."""
    y = np.asarray(y)
    counts = np.bincount(y, minlength=len(genres))
    if (counts > 0).sum() < 3:
        return []
    out = []
    for g in np.flatnonzero(counts >= min_covers):
        test = np.flatnonzero(y == g)
        banned = {groups[i] for i in test} if groups is not None else set()
        train = np.array([i for i in range(len(y)) if y[i] != g and (groups is None or groups[i] not in banned)],
                         dtype=np.int64)
        out.append(Split(f"unknown:{genres[g]}", train, test,
                         {"kind": "unknown genre", "genre": genres[g], "test_covers": int(len(test)),
                          "left_out_of_training": int(len(y) - len(test) - len(train))}))
    return out


def cross_validate(features: dict[str, np.ndarray], y: np.ndarray, genres: list[str], folds: int = 5,
                   seed: int = 0, heads: tuple[str, ...] = HEAD_KINDS, log=None,
                   variants: dict[str, dict[str, np.ndarray]] | None = None, on_fold=None,
                   fold_features=None, groups: list[str] | None = None, sources: list[str] | None = None,
                   cross_source: bool = True, resume_dir: Path | None = None, balanced: bool = True,
                   only: set[str] | None = None, collections: list[str] | None = None,
                   unknown_genres: bool = False) -> dict:
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
    out = {"heads": results, "genres": genres, "folds": folds, "seed": seed, "images": int(len(y)),
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
    heads = {}
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
