"""The genre names people type, per genre a model may know: written into each model's manifest.

Only names that mean the genre (or that stores and tag sets use for it) are aliases; a
sub-genre is not (``punk`` is not ``rock``: keeping every rock cover for ``--keep punk`` would
be a surprise). Case, spaces, hyphens and underscores never matter (``scorer.filters.genre_key``),
so ``Hip Hop`` and ``hip-hop`` need no row of their own.
"""

from __future__ import annotations

from scorer.filters import genre_key

#: genre → the other names it answers to
ALIASES: dict[str, tuple[str, ...]] = {
    "hiphop": ("hip hop", "rap", "hiphop_rap", "hip hop/rap", "hip-hop & rap", "rap/hip hop"),
    "electronic": ("edm", "electronica", "dance", "electro", "electronic dance music", "dance/electronic"),
    "metal": ("heavy metal",),
    "country": ("country music", "country and western", "country & western", "c&w"),
    "classical": ("classical music", "western classical"),
    "jazz": ("jazz music",),
    "reggae": ("roots reggae",),
    "rock": ("rock music", "rock and roll", "rock & roll", "rock'n'roll", "rock n roll"),
    "pop": ("pop music",),
    "rnb": ("r&b", "rhythm and blues", "rhythm & blues", "r & b"),
    "soul": ("soul music",),
    "folk": ("folk music",),
    "punk": ("punk rock",),
    "blues": ("blues music",),
}


def aliases_for(genres: list[str]) -> dict[str, str]:
    """``{alias: genre}`` for the genres a model knows (by their normalised names)."""
    by_key = {genre_key(g): g for g in genres}
    out: dict[str, str] = {}
    for canonical, names in ALIASES.items():
        genre = by_key.get(genre_key(canonical))
        if genre is None:
            continue
        for name in (canonical, *names):
            if genre_key(name) != genre_key(genre):
                out[name] = genre
    return out
