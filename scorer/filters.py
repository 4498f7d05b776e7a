"""``--keep``: which scored rows a listener keeps, by preferred genres."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class UsageError(ValueError):
    """A bad argument: reported before any work starts."""


@dataclass(frozen=True)
class KeepFilter:
    """Keep a row when its top genre is kept, or with ``min_prob``, when the kept genres'
    summed probability reaches it. With no genres, every scored row is kept."""

    genres: tuple[str, ...] = ()
    min_prob: float | None = None

    @classmethod
    def parse(cls, keep: str | None, known: list[str], min_prob: float | None = None) -> KeepFilter:
        if min_prob is not None and not 0.0 <= min_prob <= 1.0:
            raise UsageError(f"--min-prob must be between 0 and 1, got {min_prob}")
        wanted = tuple(dict.fromkeys(g.strip().lower() for g in (keep or "").split(",") if g.strip()))
        unknown = [g for g in wanted if g not in known]
        if unknown:
            raise UsageError(f"unknown genre(s) in --keep: {', '.join(unknown)}. "
                             f"This model knows: {', '.join(known)}")
        if min_prob is not None and not wanted:
            raise UsageError("--min-prob needs --keep: it is the summed probability of the kept genres")
        return cls(wanted, min_prob)

    def apply(self, proba: np.ndarray, genres: list[str]) -> np.ndarray:
        """Boolean per row of ``proba`` (rows of NaN, i.e. failures, are never kept)."""
        ok = ~np.isnan(proba).any(axis=1)
        if not self.genres:
            return ok
        cols = [genres.index(g) for g in self.genres]
        if self.min_prob is not None:
            return ok & (np.nan_to_num(proba[:, cols]).sum(axis=1) >= self.min_prob)
        top = np.nan_to_num(proba, nan=-1).argmax(axis=1)
        return ok & np.isin(top, cols)
