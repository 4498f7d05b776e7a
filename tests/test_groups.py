"""Leak-free groups: near-duplicate covers (re-encoded, resized, cropped, bannered copies of real
covers) and every album of one artist share a group, and no fold ever splits a group."""

from __future__ import annotations

import csv
import io

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw

from scorer.training.dataset import load_labelled
from scorer.training.evaluate import stratified_folds
from scorer.training.groups import PHASH_NEAR, leak_free_groups


def _variants(path, out_dir, stem):
    """Four near-duplicates of one cover, as stores and reissues make them."""
    img = Image.open(path).convert("RGB")
    out = []
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=35)  # another store's re-encoding
    (out_dir / f"{stem}-q35.jpg").write_bytes(buf.getvalue())
    out.append(out_dir / f"{stem}-q35.jpg")
    img.resize((640, 640), Image.Resampling.LANCZOS).save(out_dir / f"{stem}-640.jpg", quality=92)
    out.append(out_dir / f"{stem}-640.jpg")
    w, h = img.size
    img.crop((w // 25, h // 25, w - w // 25, h - h // 25)).save(out_dir / f"{stem}-crop.jpg", quality=90)
    out.append(out_dir / f"{stem}-crop.jpg")
    deluxe = img.copy()
    ImageDraw.Draw(deluxe).rectangle([0, h - h // 14, w, h], fill=(200, 20, 20))  # a "deluxe edition" band
    deluxe.save(out_dir / f"{stem}-deluxe.png")
    out.append(out_dir / f"{stem}-deluxe.png")
    return out


def _phash(path) -> imagehash.ImageHash:
    with Image.open(path) as img:
        return imagehash.phash(img.convert("RGB"))


@pytest.fixture(scope="module")
def near_duplicate_set(sample_covers, tmp_path_factory):
    """16 real covers (no two alike, checked with imagehash directly), each with 4 near-duplicates,
    in a CSV with an artist column: covers 0-3 share one artist (case and spacing differ), the rest
    have none."""
    root = tmp_path_factory.mktemp("neardup")
    originals = []
    for p in sample_covers:
        h = _phash(p)
        if all(h - _phash(q) > 2 * PHASH_NEAR for q in originals):
            originals.append(p)
        if len(originals) == 16:
            break
    assert len(originals) == 16
    rows = []
    for i, p in enumerate(originals):
        artist = ["The Band", "the band", " The  Band ", "THE BAND"][i] if i < 4 else ""
        rows.append({"path": str(p), "genre": p.parent.name, "artist": artist, "original": i})
        for v in _variants(p, root, f"c{i}"):
            rows.append({"path": str(v), "genre": p.parent.name, "artist": "", "original": i})
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "genre", "artist", "original"])
        w.writeheader()
        w.writerows(rows)
    return labels, {r["path"]: r["original"] for r in rows}


def test_near_duplicates_share_a_group_and_distinct_covers_do_not(near_duplicate_set):
    labels, original = near_duplicate_set
    ds = load_labelled(labels)
    group_of = {e.path: g for e, g in zip(ds.examples, ds.groups)}
    by_original: dict[int, set] = {}
    for path, i in original.items():
        by_original.setdefault(i, set()).add(group_of[path])
    assert all(len(g) == 1 for g in by_original.values()), by_original  # every copy with its original
    assert len({next(iter(g)) for g in by_original.values()}) == 16  # no two originals merged
    nd = ds.grouping["near_duplicates"]
    assert nd["clusters"] == 16 and nd["covers_in_clusters"] == 80 and nd["largest_cluster"] == 5
    assert ds.grouping["groups"] == 16


def test_artists_group_covers_and_an_empty_artist_is_unknown(near_duplicate_set):
    labels, original = near_duplicate_set
    ds = load_labelled(labels, group_by="artist")
    group_of = {e.path: g for e, g in zip(ds.examples, ds.groups)}
    artist_groups = {group_of[p] for p, i in original.items() if i < 4}
    assert len(artist_groups) == 1  # "The Band" however it is written, with all its covers' copies
    assert len({group_of[p] for p, i in original.items() if i >= 4}) == 12  # unknown artist: own cluster
    assert ds.grouping["artists"] == {"known": 1, "covers_without_artist": 16 * 5 - 4}
    assert ds.grouping["groups"] == 13
    y = np.array(ds.labels)
    for test in stratified_folds(y, 3, 0, ds.groups):
        inside = {ds.groups[i] for i in test}
        outside = {ds.groups[i] for i in set(range(len(y))) - set(test.tolist())}
        assert not inside & outside


def test_near_duplicates_can_be_turned_off(near_duplicate_set):
    labels, _ = near_duplicate_set
    ds = load_labelled(labels, near_duplicates=False)
    assert "near_duplicates" not in ds.grouping
    assert len(set(ds.groups)) == len(ds.examples)  # every cover its own group


def test_group_ids_name_a_member_and_the_partition_ignores_order(near_duplicate_set):
    labels, _ = near_duplicate_set
    ds = load_labelled(labels)
    shas = {e.sha256[:16] for e in ds.examples}
    assert set(ds.groups) <= shas
    again = leak_free_groups(list(reversed(ds.examples)))
    pairs = {(a.path, b.path) for a, ga in zip(ds.examples, ds.groups) for b, gb in zip(ds.examples, ds.groups)
             if ga == gb}
    rev = list(reversed(ds.examples))
    pairs_again = {(a.path, b.path) for a, ga in zip(rev, again.groups) for b, gb in zip(rev, again.groups)
                   if ga == gb}
    assert pairs == pairs_again  # the same partition whatever the order


@pytest.mark.shared_data
def test_both_shared_sets_near_duplicates_are_grouped(covers_dir, spotify_dir):
    """On the real sets: every pair of covers at pHash distance <= 10 (computed here, with
    imagehash directly) shares a group, and covers of one Spotify artist too."""
    ds = load_labelled([covers_dir, spotify_dir], group_by="artist")
    assert ds.sources == ["covers-5genre", "covers-spotify"]
    nd = ds.grouping["near_duplicates"]
    assert nd["pairs"] > 500 and nd["clusters_spanning_sources"] > 0  # one album on both stores
    rng = np.random.default_rng(0)
    sample = rng.choice(len(ds.examples), size=600, replace=False)
    hashes = [int(str(_phash(ds.examples[i].path)), 16) for i in sample]
    checked = 0
    for a in range(len(sample)):
        for b in range(a + 1, len(sample)):
            if bin(hashes[a] ^ hashes[b]).count("1") <= PHASH_NEAR:
                checked += 1
                assert ds.groups[sample[a]] == ds.groups[sample[b]]
    assert checked > 0
    by_artist: dict[str, set] = {}
    for e, g in zip(ds.examples, ds.groups):
        if e.group:
            by_artist.setdefault(e.group.casefold(), set()).add(g)
    assert len(by_artist) == 71 and all(len(g) == 1 for g in by_artist.values())
