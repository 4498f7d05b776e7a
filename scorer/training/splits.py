"""How labelled covers are split for evaluation: grouped stratified folds, held-out collections, cross-source
splits and genres left out. A split never separates covers of one group (an artist, a near-duplicate cluster)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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


def stratified_folds(y: np.ndarray, folds: int, seed: int, groups: list[str] | None = None) -> list[np.ndarray]:
    """Test rows of each fold; with ``groups``, every group sits in one fold only (stratified group k-fold)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is None or len(set(groups)) == len(groups):  # no group of two: plain stratified k-fold
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return [test for _, test in skf.split(np.zeros(len(y)), y)]
    if len(set(groups)) < folds:
        raise ValueError(f"{len(set(groups))} groups (artists, near-duplicate clusters) cannot fill {folds} folds: "
                         f"lower --folds, or add covers of other artists")
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
