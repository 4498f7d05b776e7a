"""Labelled sets (folder or CSV, dedup by content), the feature cache, and the evaluation metrics."""

from __future__ import annotations

import csv
import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scorer.decode import decode_image
from scorer.featurize import ColourFeaturizer, OnnxFeaturizer
from scorer.model import shipped_featurizer
from scorer.training.dataset import Dataset, Example, load_labelled
from scorer.training.evaluate import metrics
from scorer.training.features import FeatureCache, extract

# ---------------------------------------------------------------- a small generated labelled folder


def _cover(path: Path, colour: tuple[int, int, int], fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (48, 48), colour)
    img.paste((255 - colour[0], 255 - colour[1], 255 - colour[2]), (8, 8, 24, 24))  # not a flat fill
    img.save(path, fmt)
    return path


@pytest.fixture
def labelled(tmp_path) -> Path:
    """rock: r1, r2, r2-copy (same bytes as r2), shared; pop: p1, p2.jpg, shared (same bytes as rock's)."""
    root = tmp_path / "labelled"
    _cover(root / "rock" / "r1.png", (200, 30, 30))
    _cover(root / "rock" / "r2.png", (120, 10, 60))
    shutil.copy(root / "rock" / "r2.png", root / "rock" / "r2-copy.png")
    _cover(root / "rock" / "shared.png", (10, 10, 10))
    _cover(root / "pop" / "p1.png", (250, 120, 200))
    _cover(root / "pop" / "p2.jpg", (30, 200, 250), fmt="JPEG")
    shutil.copy(root / "rock" / "shared.png", root / "pop" / "shared.png")
    (root / "pop" / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    _cover(root / ".hidden" / "h.png", (1, 2, 3))  # ignored: hidden folder
    (root / "README.md").write_text("a file at the top level is not a genre")
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_folder_dedup_and_conflicts(labelled):
    ds = load_labelled(labelled)
    assert ds.genres == ["pop", "rock"]
    assert ds.dropped_duplicates == 1
    assert ds.dropped_conflicts == 2
    names = sorted(Path(e.path).name for e in ds.examples)
    assert "shared.png" not in names  # filed under both genres: dropped from both
    assert len([n for n in names if n.startswith("r2")]) == 1  # identical copies: kept once
    assert sorted(n.replace("r2-copy", "r2") for n in names) == ["p1.png", "p2.jpg", "r1.png", "r2.png"]
    assert ds.counts() == {"pop": 2, "rock": 2}
    for e in ds.examples:
        assert Path(e.path).parent.name == e.genre
        assert e.sha256 == _sha(Path(e.path))
    assert [ds.genres[i] for i in ds.labels] == [e.genre for e in ds.examples]


def _write_csv(path: Path, rows: list[dict], fields=("path", "genre")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _rows_of(root: Path) -> list[dict]:
    return [{"path": p.relative_to(root).as_posix(), "genre": p.parent.name}
            for p in sorted(root.glob("*/*.*")) if not p.parent.name.startswith(".") and p.suffix != ".txt"]


def test_csv_gives_the_same_examples(labelled):
    rows = _rows_of(labelled)
    assert len(rows) == 7
    from_csv = load_labelled(_write_csv(labelled / "labels.csv", rows))
    from_folder = load_labelled(labelled)
    assert from_csv.examples == from_folder.examples
    assert from_csv.genres == from_folder.genres
    assert (from_csv.dropped_duplicates, from_csv.dropped_conflicts) == (1, 2)


def test_csv_relative_paths_resolve_against_the_csv_folder(labelled, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    rows = [{"path": f"labelled/{r['path']}", "genre": r["genre"]} for r in _rows_of(labelled)]
    ds = load_labelled(_write_csv(tmp_path / "list.csv", rows))
    assert len(ds.examples) == 4
    for e in ds.examples:
        assert Path(e.path).is_file()
        assert Path(e.path).is_relative_to(tmp_path / "labelled")


def test_csv_absolute_paths_and_extra_columns(labelled, tmp_path):
    rows = [{"id": i, "path": str(labelled / r["path"]), "genre": f" {r['genre']} "}
            for i, r in enumerate(_rows_of(labelled))]
    ds = load_labelled(_write_csv(tmp_path / "abs.csv", rows, fields=("id", "path", "genre")))
    assert ds.genres == ["pop", "rock"]  # genre names are stripped
    def same(d):  # the input's name (its source) differs: abs.csv against the folder
        return [(e.path, e.genre, e.sha256) for e in d.examples]

    assert same(ds) == same(load_labelled(labelled))
    assert {e.source for e in ds.examples} == {"abs"}


def test_csv_without_genre_column(labelled):
    path = _write_csv(labelled / "bad.csv", [{"path": "rock/r1.png", "label": "rock"}], fields=("path", "label"))
    with pytest.raises(ValueError, match="genre"):
        load_labelled(path)


def test_not_a_folder_nor_a_csv(tmp_path, labelled):
    with pytest.raises(ValueError, match="expected a folder"):
        load_labelled(tmp_path / "does-not-exist")
    with pytest.raises(ValueError, match="expected a folder"):
        load_labelled(labelled / "pop" / "notes.txt")


def test_empty_folder(tmp_path):
    (tmp_path / "rock").mkdir()
    with pytest.raises(ValueError, match="no labelled images"):
        load_labelled(tmp_path)


def test_fingerprint_ignores_order_and_paths_but_sees_labels(labelled, tmp_path):
    rows = _rows_of(labelled)
    forward = load_labelled(_write_csv(labelled / "a.csv", rows))
    backward = load_labelled(_write_csv(labelled / "b.csv", rows[::-1]))
    assert forward.fingerprint() == backward.fingerprint()
    shuffled = Dataset(forward.examples[::-1], forward.genres)
    assert shuffled.fingerprint() == forward.fingerprint()
    # the same content under another name is the same training set
    renamed = Dataset([replace(e, path=e.path + ".moved") for e in forward.examples], forward.genres)
    assert renamed.fingerprint() == forward.fingerprint()
    # one label changed: a different training set
    relabelled = [replace(e, genre="pop") if Path(e.path).name == "r1.png" else e for e in forward.examples]
    assert Dataset(relabelled, forward.genres).fingerprint() != forward.fingerprint()
    # one image dropped: different too
    assert Dataset(forward.examples[1:], forward.genres).fingerprint() != forward.fingerprint()


# ---------------------------------------------------------------- the real covers

EXPECTED_COUNTS = {"country": 996, "electronic": 815, "hiphop": 945, "pop": 783, "rock": 913}


@pytest.mark.shared_data
def test_real_covers(covers_dir):
    ds = load_labelled(covers_dir)
    assert len(ds.examples) == 4452
    assert ds.genres == sorted(EXPECTED_COUNTS)
    assert ds.counts() == EXPECTED_COUNTS
    assert (ds.dropped_duplicates, ds.dropped_conflicts) == (0, 0)  # the folder was cleaned
    with open(covers_dir / "labels.csv", newline="") as f:
        labels = {r["path"]: r for r in csv.DictReader(f)}
    assert len(labels) == 4452
    for e in ds.examples:
        rel = Path(e.path).relative_to(covers_dir).as_posix()
        assert labels[rel]["sha256"] == e.sha256, rel
        assert labels[rel]["genre"] == e.genre, rel
    # labels.csv itself is a valid CSV input and describes the same set
    assert load_labelled(covers_dir / "labels.csv").fingerprint() == ds.fingerprint()


# ---------------------------------------------------------------- feature extraction and its cache


class MustNotRun:
    """Stands in for a featurizer whose vectors are all cached: same id, but calling it is an error."""

    def __init__(self, featurizer_id: str, dim: int):
        self.id = featurizer_id
        self.dim = dim
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        raise AssertionError("featurizer called although every vector is cached")


@pytest.mark.shared_data
def test_extract_caches_features(sample_covers, tmp_path):
    examples = [Example(str(p), p.parent.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sample_covers[::4]]
    assert len(examples) == 10
    cache_root = tmp_path / "features"
    featurizers = {"cnn": OnnxFeaturizer(shipped_featurizer()), "colour": ColourFeaturizer()}
    first = extract(examples, featurizers, cache_root=cache_root, batch_size=4)
    assert first["cnn"].shape == (10, 1280)
    assert first["colour"].shape == (10, 512)
    assert first["cnn"].dtype == np.float32
    for kind, f in featurizers.items():
        cache = FeatureCache(cache_root, f.id)
        for i, e in enumerate(examples):
            assert cache.path(e.sha256).is_file()
            np.testing.assert_array_equal(cache.get(e.sha256), first[kind][i])
    # rows follow the examples' order: the colour histogram of example 3 is the histogram of that file
    direct = ColourFeaturizer()(decode_image(Path(examples[3].path).read_bytes())[None])[0]
    np.testing.assert_allclose(first["colour"][3], direct, atol=1e-7)

    fakes = {k: MustNotRun(f.id, f.dim) for k, f in featurizers.items()}
    second = extract(examples, fakes, cache_root=cache_root)
    for kind in featurizers:
        np.testing.assert_array_equal(second[kind], first[kind])
        assert fakes[kind].calls == 0
    # order is by the examples given, not by the cache
    rev = extract(examples[::-1], fakes, cache_root=cache_root)
    np.testing.assert_array_equal(rev["cnn"], first["cnn"][::-1])


def test_extract_computes_only_what_is_missing(tmp_path):
    paths = [_cover(tmp_path / "img" / f"{i}.png", (40 * i, 100, 255 - 40 * i)) for i in range(5)]
    examples = [Example(str(p), "g", _sha(p)) for p in paths]
    colour = ColourFeaturizer()
    cache_root = tmp_path / "cache"
    extract(examples[:3], {"colour": colour}, cache_root=cache_root)

    class Counting:
        id = colour.id

        def __init__(self):
            self.images = 0

        def __call__(self, images):
            self.images += len(images)
            return colour(images)

    counting = Counting()
    out = extract(examples, {"colour": counting}, cache_root=cache_root)
    assert counting.images == 2  # only the two new covers were featurized
    assert out["colour"].shape == (5, 512)
    assert len({row.tobytes() for row in out["colour"]}) == 5


def test_extract_names_unreadable_images(tmp_path):
    good = _cover(tmp_path / "ok.png", (1, 2, 3))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"<html>not an image</html>")
    examples = [Example(str(good), "g", _sha(good)), Example(str(bad), "g", _sha(bad))]
    with pytest.raises(ValueError, match=r"1 labelled image\(s\) could not be read: .*bad\.png"):
        extract(examples, {"colour": ColourFeaturizer()}, cache_root=tmp_path / "cache")


def test_feature_cache_ignores_damaged_entries(tmp_path):
    cache = FeatureCache(tmp_path, "some-featurizer")
    sha = "ab" + "0" * 62
    assert cache.get(sha) is None
    cache.put(sha, np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(cache.get(sha), np.arange(4, dtype=np.float32))
    assert cache.path(sha) == tmp_path / "some-featurizer" / "ab" / f"{sha}.npy"
    cache.path(sha).write_bytes(b"garbage")
    assert cache.get(sha) is None
    assert not list(cache.path(sha).parent.glob("*.tmp"))  # no temp files left behind


# ---------------------------------------------------------------- metrics


def test_metrics_by_hand():
    genres = ["a", "b", "c", "d"]
    #             a  a  a  a  b  b  b  c  c  c
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 0, 1, 3, 1, 1, 2, 2, 0, 0])
    m = metrics(y_true, y_pred, genres)
    assert m["confusion_matrix"] == [
        [2, 1, 0, 1],
        [0, 2, 1, 0],
        [2, 0, 1, 0],
        [0, 0, 0, 0],
    ]
    assert m["accuracy"] == pytest.approx(5 / 10)
    # recall per true genre: a 2/4, b 2/3, c 1/3; d never occurs, so it is 0 and left out of the balance
    assert m["recall"] == pytest.approx({"a": 0.5, "b": 2 / 3, "c": 1 / 3, "d": 0.0})
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 2 / 3 + 1 / 3) / 3)
    # precision per predicted genre: a 2/4, b 2/3, c 1/2, d 0/1
    assert m["precision"] == pytest.approx({"a": 0.5, "b": 2 / 3, "c": 0.5, "d": 0.0})


def test_metrics_perfect_and_empty():
    y = np.array([0, 1, 2, 2])
    perfect = metrics(y, y, ["x", "y", "z"])
    assert perfect["accuracy"] == 1.0
    assert perfect["balanced_accuracy"] == 1.0
    empty = metrics(np.array([], dtype=int), np.array([], dtype=int), ["x", "y"])
    assert empty["accuracy"] == 0.0
    assert empty["balanced_accuracy"] == 0.0
    assert empty["confusion_matrix"] == [[0, 0], [0, 0]]
