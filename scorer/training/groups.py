"""Leak-free groups for cross-validation: near-duplicate covers, and every album of one artist.

A remaster, a deluxe or live edition, or the same album on another store shares its cover,
give or take a banner, a crop or a re-encoding. Left on both sides of a fold, such pairs
inflate every figure, so each group below stays on one side:

- covers whose perceptual hashes are close are one near-duplicate cluster (union-find, so a
  chain of near-duplicates is one cluster);
- with an artist column, covers of one artist are one group; an empty artist is unknown, and
  such a cover is grouped by its near-duplicate cluster only.

The thresholds were chosen by looking at pairs of the shared cover sets (see the README): a
64-bit pHash distance of at most 10 is nearly always the same artwork; from 12 to 14 it is the
same artwork when the 64-bit dHash (gradient) distance is at most 12 too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: pHash distance (of 64 bits) at or under which two covers are near-duplicates
PHASH_NEAR = 10
#: up to this pHash distance, a pair is a near-duplicate when its dHash distance is small too
PHASH_LOOSE, DHASH_NEAR = 14, 12
HASHES_ID = "phash8-dhash8"


@dataclass
class Grouping:
    """One group id per cover, and what was found."""

    groups: list[str]
    stats: dict = field(default_factory=dict)


def perceptual_hashes(paths: list[str], shas: list[str], cache_root: Path | None = None) -> np.ndarray:
    """``(N, 2)`` uint64: the pHash and dHash of each cover (cached by content hash)."""
    import imagehash
    from PIL import Image

    from scorer.training.feature_cache import FeatureCache, default_cache_dir

    cache = FeatureCache((cache_root or default_cache_dir()), HASHES_ID)
    out = np.zeros((len(paths), 2), dtype=np.uint64)
    for i, (path, sha) in enumerate(zip(paths, shas)):
        got = cache.get(sha)
        if got is None:
            try:  # load_labelled checked every cover: this is for callers that did not
                with Image.open(path) as opened:
                    img = opened.convert("RGB")
            except (OSError, SyntaxError, ValueError) as e:  # UnidentifiedImageError is an OSError
                raise ValueError(f"{path}: not a readable image ({e}); remove it from the labelled set") from e
            got = np.array([int(str(imagehash.phash(img)), 16), int(str(imagehash.dhash(img)), 16)], dtype=np.uint64)
            cache.put(sha, got)
        out[i] = got
    return out


def near_duplicate_pairs(hashes: np.ndarray, chunk: int = 512) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of near-duplicate covers."""
    ph, dh = hashes[:, 0], hashes[:, 1]
    pairs = []
    for start in range(0, len(ph), chunk):
        block = slice(start, start + chunk)
        dp = np.bitwise_count(ph[block, None] ^ ph[None, :])
        dd = np.bitwise_count(dh[block, None] ^ dh[None, :])
        near = (dp <= PHASH_NEAR) | ((dp <= PHASH_LOOSE) & (dd <= DHASH_NEAR))
        rows, cols = np.nonzero(near)
        rows = rows + start
        keep = rows < cols
        pairs += list(zip(rows[keep].tolist(), cols[keep].tolist()))
    return pairs


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _artist_key(artist: str | None) -> str | None:
    key = " ".join((artist or "").casefold().split())
    return key or None


def leak_free_groups(examples: list, near_duplicates: bool = True, by_artist: bool = False,
                     cache_root: Path | None = None) -> Grouping:
    """Group ids for :func:`scorer.training.evaluate.stratified_folds` and what the grouping found.

    ``examples`` have ``path``, ``sha256``, ``genre``, ``source`` and ``group`` (the artist, with
    ``by_artist``; empty when unknown).
    """
    n = len(examples)
    uf = _UnionFind(n)
    stats: dict = {}
    if near_duplicates and n:
        hashes = perceptual_hashes([e.path for e in examples], [e.sha256 for e in examples], cache_root)
        pairs = near_duplicate_pairs(hashes)
        for a, b in pairs:
            uf.union(a, b)
        roots = [uf.find(i) for i in range(n)]
        sizes = Counter(roots)
        clusters = {r for r, s in sizes.items() if s > 1}
        genres_of: dict[int, set] = {}
        sources_of: dict[int, set] = {}
        for i, r in enumerate(roots):
            if r in clusters:
                genres_of.setdefault(r, set()).add(examples[i].genre)
                sources_of.setdefault(r, set()).add(examples[i].source)
        stats["near_duplicates"] = {
            "method": f"pHash distance <= {PHASH_NEAR}, or <= {PHASH_LOOSE} with dHash distance <= {DHASH_NEAR} "
                      f"(64-bit hashes, imagehash)",
            "pairs": len(pairs),
            "clusters": len(clusters),
            "covers_in_clusters": sum(sizes[r] for r in clusters),
            "largest_cluster": max((sizes[r] for r in clusters), default=0),
            "clusters_spanning_genres": sum(1 for r in clusters if len(genres_of[r]) > 1),
            "clusters_spanning_sources": sum(1 for r in clusters if len(sources_of[r]) > 1),
        }
    if by_artist:
        first: dict[str, int] = {}
        unknown = 0
        for i, e in enumerate(examples):
            key = _artist_key(e.group)
            if key is None:
                unknown += 1
            elif key in first:
                uf.union(i, first[key])
            else:
                first[key] = i
        stats["artists"] = {"known": len(first), "covers_without_artist": unknown}
    roots = [uf.find(i) for i in range(n)]
    stats["groups"] = len(set(roots))
    # a group is named after its first cover's content hash
    name = {r: examples[r].sha256[:16] for r in set(roots)}
    return Grouping([name[r] for r in roots], stats)
