"""``--keep``: which scored rows a listener keeps, by preferred genres."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from scorer.errors import UsageError

#: how to get a genre a model lacks (the README section of that name)
NEW_GENRE_HINT = ("to score a genre this model lacks, train a model on labelled covers of it "
                  "(scorer dataset musicbrainz --genre G ... --out DIR builds a set; scorer train DIR --out MODEL, "
                  "then --model MODEL; see \"Training on your own covers\" in the README)")


def genre_key(name: str) -> str:
    """A genre name as compared: case, spaces, hyphens, underscores and dots do not matter."""
    return re.sub(r"[\s\-_.]+", "", name.casefold())


def resolve_genres(wanted: list[str], known: list[str], aliases: dict[str, str] | None = None
                   ) -> tuple[list[str], list[str]]:
    """``(genres, unknown)``: each wanted name as one of ``known`` (directly or by an alias), and
    the names that are neither."""
    table = {genre_key(g): g for g in known}
    for alias, target in (aliases or {}).items():
        if target in known:
            table.setdefault(genre_key(alias), target)
    genres: list[str] = []
    unknown: list[str] = []
    for name in wanted:
        genre = table.get(genre_key(name))
        if genre is None:
            unknown.append(name)
        elif genre not in genres:
            genres.append(genre)
    return genres, unknown


@dataclass(frozen=True)
class KeepFilter:
    """Keep a row when its top genre is kept, or with ``min_prob``, when the kept genres'
    summed probability reaches it. With no genres, every scored row is kept."""

    genres: tuple[str, ...] = ()
    min_prob: float | None = None

    @classmethod
    def parse(cls, keep: str | None, known: list[str], min_prob: float | None = None,
              aliases: dict[str, str] | None = None) -> KeepFilter:
        """``keep``: comma-separated genre names, as the model calls them or by an alias of its
        manifest (``Hip-Hop``, ``rap`` → ``hiphop``)."""
        if min_prob is not None and not 0.0 <= min_prob <= 1.0:
            raise UsageError(f"--min-prob must be between 0 and 1, got {min_prob}")
        wanted = [g.strip() for g in (keep or "").split(",") if g.strip()]
        genres, unknown = resolve_genres(wanted, known, aliases)
        if unknown:
            examples = list(aliases or {})[:3]
            also = f" (and aliases such as {', '.join(examples)}: `scorer info` lists them)" if examples else ""
            raise UsageError(f"unknown genre(s) in --keep: {', '.join(unknown)}. This model knows: "
                             f"{', '.join(known)}{also}. {NEW_GENRE_HINT[0].upper()}{NEW_GENRE_HINT[1:]}.")
        if min_prob is not None and not genres:
            raise UsageError("--min-prob needs --keep: it is the summed probability of the kept genres")
        return cls(tuple(genres), min_prob)

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


def split_keep(keep: str | None, models: list[tuple[str, list[str], dict[str, str]]]) -> list[str]:
    """``keep`` shared out among several models scored together (``--also``): one comma-separated text per model
    (in ``models`` order, the main model first). A name goes to the first model that knows it (by name or alias);
    ``NAME:label`` sends it to the model called NAME. Unknown names fail here, with every model's labels."""
    wanted = [g.strip() for g in (keep or "").split(",") if g.strip()]
    shares: list[list[str]] = [[] for _ in models]
    unknown: list[str] = []
    names = {genre_key(name): i for i, (name, _, _) in reversed(list(enumerate(models)))}
    for text in wanted:
        prefix, _, label = text.rpartition(":")
        if prefix and genre_key(prefix) in names:
            i = names[genre_key(prefix)]
            found, _ = resolve_genres([label], models[i][1], models[i][2])
            (shares[i] if found else unknown).append(label if found else text)
            continue
        for i, (_, known, aliases) in enumerate(models):
            if resolve_genres([text], known, aliases)[0]:
                shares[i].append(text)
                break
        else:
            unknown.append(text)
    if unknown:
        labels = "; ".join(f"{name or 'the main model'}: {', '.join(known)}" for name, known, _ in models)
        raise UsageError(f"unknown label(s) in --keep: {', '.join(unknown)}. The models know {labels} "
                         "(NAME:label picks one model's label)")
    return [",".join(s) for s in shares]
