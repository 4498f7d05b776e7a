"""``scorer train`` writes a self-contained model directory that ``scorer catalog`` can use."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from scorer.cli import app
from scorer.model import Model


def test_train_then_score_with_the_new_model(covers_dir, tmp_path):
    rows = []
    for genre in ("country", "hiphop", "rock"):
        rows += [(str(p), genre) for p in sorted((covers_dir / genre).glob("*.jpg"))[:20]]
    data = tmp_path / "labels.csv"
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre"])
        w.writerows(rows)

    model_dir = tmp_path / "model"
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(model_dir), "--folds", "3", "--name", "mini"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["genres"] == ["country", "hiphop", "rock"]
    assert manifest["training_set"]["images"] == 60
    assert manifest["default_head"] in [*manifest["heads"], "ensemble"]
    assert manifest["cv"]["folds"] == 3
    assert (model_dir / manifest["featurizers"]["cnn"]["file"]).exists()  # self-contained copy
    for spec in manifest["heads"].values():
        assert (model_dir / spec["file"]).exists()
    assert not list(tmp_path.glob(".model.*"))  # staging folder renamed away

    catalog = tmp_path / "catalog.csv"
    with open(catalog, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cover_url"])
        w.writerows([[p] for p, _ in rows[::7]])
    out = tmp_path / "scored.parquet"
    result = CliRunner().invoke(app, ["catalog", str(catalog), "--out", str(out), "--model", str(model_dir),
                                      "--keep", "hiphop"])
    assert result.exit_code == 0, result.output
    df = pq.read_table(out).to_pandas()
    assert set(df.genre) <= {"country", "hiphop", "rock"}
    assert {c for c in df.columns if c.startswith("p_")} == {"p_country", "p_hiphop", "p_rock"}
    cnn = manifest["featurizers"]["cnn"]
    assert (df.model_version == f"{manifest['version']}+{cnn['default_precision']}").all()
    # by default the heads sit on the shipped genre model's network, at the precision that model scores with:
    # the same network id, so the two models score together with one network run
    genre_model = Model()
    assert cnn["id"] == genre_model.variants["fp32"]["id"] and cnn["default_precision"] == "fp32"
    assert cnn["network"]["name"] == "default" and genre_model.spec.version in cnn["network"]["description"]
    assert Model(model_dir).network_key == genre_model.network_key
    # it was fine-tuned on the genre model's covers, not on these: no "finetuning" for `scorer info` to print
    assert "finetuning" not in cnn and cnn["network"]["finetuning"]["recipe"]["size"] == 160
    # the int8 network travels with the model too, not measured (the model scores at fp32, as the genre model)
    assert (model_dir / cnn["variants"]["int8"]["file"]).exists() and "cv" not in cnn["variants"]["int8"]
    assert Model(model_dir).default_head == manifest["default_head"]

    bad = CliRunner().invoke(app, ["catalog", str(catalog), "--out", str(out), "--model", str(model_dir),
                                   "--keep", "pop"])
    assert bad.exit_code == 2 and "country, hiphop, rock" in bad.output


def _labels(covers_dir, path, genres=("country", "hiphop", "rock"), per_genre=20):
    rows = [(str(p), g) for g in genres for p in sorted((covers_dir / g).glob("*.jpg"))[:per_genre]]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre"])
        w.writerows(rows)
    return rows


def test_features_at_training_are_those_of_scoring(covers_dir, tmp_path):
    """The heads are fitted on the features scoring computes for the same covers (same decode, same size,
    same network), and the model scores beside the genre model in one pass."""
    import numpy as np

    import scorer
    from scorer.featurize import OnnxFeaturizer
    from scorer.training.dataset import load_labelled
    from scorer.training.features import extract

    rows = _labels(covers_dir, tmp_path / "labels.csv", per_genre=6)
    model = scorer.train(tmp_path / "labels.csv", tmp_path / "m", folds=2, heads="cnn-logreg,cnn-knn")
    assert set(model.manifest["heads"]) == {"cnn-logreg", "cnn-knn"}
    dataset = load_labelled(tmp_path / "labels.csv")
    trained = extract(dataset.examples, {"cnn": OnnxFeaturizer(model.cnn_path)})["cnn"]  # the training run's cache
    by_path = {e.path: v for e, v in zip(dataset.examples, trained)}
    # the genre model with this one beside it: the embedding column is the network's features (shared by both)
    df = scorer.score([p for p, _ in rows], also={"mine": model}, embeddings=True)
    assert (df.status == "ok").all()
    scored = np.stack(df.embedding.map(lambda v: np.asarray(v, dtype=np.float32)))
    expected = np.stack([by_path[p] for p in df.cover_url])
    # float16 in the column: equal to its rounding
    assert np.abs(scored - expected).max() <= 2e-3 * np.abs(expected).max()
    assert {"genre", "mine_label", "mine_prob", "mine_p_rock"} <= set(df.columns)
    assert set(df.mine_label) <= {"country", "hiphop", "rock"}


def test_train_on_the_imagenet_network(covers_dir, tmp_path):
    """--featurizer imagenet keeps the frozen ImageNet network: its int8 twin is measured under CV."""
    from scorer.model import shipped_featurizer

    _labels(covers_dir, tmp_path / "labels.csv", per_genre=10)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "m"),
                                      "--folds", "2", "--featurizer", "imagenet", "--heads", "cnn-logreg,colour-knn"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    cnn = manifest["featurizers"]["cnn"]
    assert cnn["id"] == json.loads(shipped_featurizer().with_suffix(".json").read_text())["id"]
    assert cnn["network"]["name"] == "imagenet"
    assert set(manifest["heads"]) == {"cnn-logreg", "colour-knn"}
    assert set(cnn["variants"]["int8"]["cv"]) == {"cnn-logreg", "colour-knn", "ensemble"}


def test_bad_heads_and_featurizer_are_usage_errors(covers_dir, tmp_path):
    _labels(covers_dir, tmp_path / "labels.csv", per_genre=3)
    for args, message in ((["--heads", "cnn-forest"], "--heads cnn-forest: use some of cnn-knn"),
                          (["--featurizer", str(tmp_path / "none.onnx")], "no such ONNX file (or use default or "
                                                                          "imagenet)"),
                          (["--heads", "cnn-knn", "--finetune"], "--heads goes without --finetune")):
        result = CliRunner().invoke(app, ["train", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "m"), *args])
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "m").exists()


def test_train_rejects_a_single_genre(covers_dir, tmp_path):
    data = tmp_path / "one.csv"
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre"])
        w.writerows([[str(p), "rock"] for p in sorted((covers_dir / "rock").glob("*.jpg"))[:5]])
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "at least two genres" in result.output
    assert not (tmp_path / "m").exists()


def test_group_by_keeps_every_artist_on_one_side(sample_covers, tmp_path):
    """Covers of one artist never sit on both sides of a fold (stratified group k-fold)."""
    import numpy as np

    from scorer.training.dataset import load_labelled
    from scorer.training.evaluate import stratified_folds

    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre", "artist"])
        for i, p in enumerate(sample_covers):  # 8 per genre, 4 artists of 2 covers each per genre
            w.writerow([p, p.parent.name, f"{p.parent.name}-artist-{i % 8 // 2}"])
    dataset = load_labelled(labels, group_by="artist")
    assert len(set(dataset.groups)) == 20
    y = np.array(dataset.labels)
    folds = stratified_folds(y, 4, seed=0, groups=dataset.groups)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(y)))
    for test in folds:
        inside = {dataset.groups[i] for i in test}
        outside = {dataset.groups[i] for i in range(len(y)) if i not in set(test.tolist())}
        assert not inside & outside
        assert len(set(y[test].tolist())) == 5  # still stratified: every genre in every fold

    result = CliRunner().invoke(app, ["evaluate", str(labels), "--folds", "2", "--group-by", "artist", "--json"])
    assert result.exit_code == 0, result.output
    cv = json.loads(result.stdout.strip().splitlines()[-1])
    assert cv["grouped"] is True and cv["dataset"]["groups"] == 20


def test_group_by_needs_an_input_with_that_column(covers_dir, sample_covers, tmp_path):
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "nowhere"), "--group-by", "artist"])
    assert result.exit_code == 2 and "expected a folder" in result.output
    labels = tmp_path / "labels.csv"
    labels.write_text("path,genre\n" + "".join(f"{p},{p.parent.name}\n" for p in sample_covers))
    result = CliRunner().invoke(app, ["evaluate", str(labels), "--group-by", "artist"])
    assert result.exit_code == 2
    assert "--group-by artist: no input has a artist column" in result.output and "Traceback" not in result.output


def test_group_by_across_inputs_with_and_without_the_column(sample_covers, tmp_path):
    """Two inputs, one with artists: its covers are grouped by artist, the other's by near-duplicates
    only; an empty artist is unknown, not an error."""
    from scorer.training.dataset import load_labelled

    a, b = tmp_path / "storeA", tmp_path / "storeB"
    a.mkdir()
    b.mkdir()
    with open(a / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre", "artist"])
        for i, p in enumerate(sample_covers[:20]):
            w.writerow([p, p.parent.name, "" if i % 5 == 0 else f"artist-{i // 4}"])
    with open(b / "list.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre"])
        w.writerows([p, p.parent.name] for p in sample_covers[20:])
    ds = load_labelled([a, b / "list.csv"], group_by="artist")
    assert ds.sources == ["storeA", "list"]
    assert ds.grouping["inputs_without_column"] == ["list"]
    assert ds.grouping["artists"] == {"known": 5, "covers_without_artist": 4 + 20}
    # 8 covers per genre in genre order: storeA has country 8, electronic 8, hiphop 4
    assert ds.counts_by_source() == {"storeA": {"country": 8, "electronic": 8, "hiphop": 4},
                                     "list": {"hiphop": 4, "pop": 8, "rock": 8}}
