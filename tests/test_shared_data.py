"""End to end on the real covers in ../shared/data (covers-5genre, covers-spotify; runs in .ci/run)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from scorer.cli import app
from scorer.model import Model
from scorer.training.evaluate import HEAD_CV_TOLERANCE, best_head
from scorer.training.pipeline import choose_precision

#: the frozen Lite0 featurizer's best head on both sets, grouped 5-fold CV, seed 0: 0.387 (cnn-logreg)
FROZEN_BEST_BALANCED_ACCURACY = 0.36


def _write_catalog(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "genre_label", "cover_url"])
        w.writeheader()
        w.writerows(rows)


def test_catalog_of_every_real_cover_plus_broken_rows(covers_dir, spotify_dir, tmp_path):
    rows = []
    for folder in (covers_dir, spotify_dir):
        with open(folder / "labels.csv", newline="") as f:
            rows += [{"id": r["sha256"][:16], "genre_label": r["genre"], "cover_url": str(folder / r["path"])}
                     for r in csv.DictReader(f)]
    assert len(rows) == 4452 + 1573
    (tmp_path / "notes.jpg").write_text("<html>not a cover</html>")
    real = open(rows[0]["cover_url"], "rb").read()
    (tmp_path / "cut.jpg").write_bytes(real[: len(real) // 3])
    broken = {"missing": ("gone.jpg", "not_found"), "html": ("notes.jpg", "not_an_image"),
              "truncated": ("cut.jpg", "decode_error"), "empty": ("", "missing_url")}
    # broken rows spread through the input, not only at the end
    for pos, (key, (url, _)) in zip((0, 1000, 4500, 6025), broken.items()):
        rows.insert(pos, {"id": key, "genre_label": "", "cover_url": url})
    _write_catalog(tmp_path / "catalog.csv", rows)

    out = tmp_path / "scored.parquet"
    result = CliRunner().invoke(app, ["catalog", str(tmp_path / "catalog.csv"), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    df = pq.read_table(out).to_pandas()
    assert len(df) == 6029 and summary["rows"] == 6029
    assert list(df.id) == [r["id"] for r in rows]  # input order kept
    assert summary["scored"] == 6025 and (df.status == "ok").sum() == 6025
    for key, (_, code) in broken.items():
        row = df[df.id == key].iloc[0]
        assert row.status == code and row.error and pd.isna(row.genre)
    assert summary["failed"] == {code: 1 for _, code in broken.values()}
    ok = df[df.status == "ok"]
    model = Model()
    probs = ok[[f"p_{g}" for g in model.genres]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    # the shipped model was trained on these covers: it fits them at least as well as covers it
    # never saw (its out-of-fold CV figure), in balanced accuracy
    recall = [(ok.genre[ok.genre_label == g] == g).mean() for g in model.genres]
    cv = model.manifest["cv"]["heads"][model.default_head]
    assert np.mean(recall) >= cv["balanced_accuracy"]


def test_full_five_fold_grouped_evaluation_of_both_sets(covers_dir, spotify_dir):
    """The frozen featurizer on both sets, grouped by artist and near-duplicates: every figure the
    issue asks for is there, and the shipped model is the best that CV measured."""
    # the ImageNet network: the default one (the shipped model's) was trained on these very covers
    result = CliRunner().invoke(app, ["evaluate", str(covers_dir), str(spotify_dir), "--group-by", "artist",
                                      "--folds", "5", "--featurizer", "imagenet", "--heads", "all", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    heads = report["heads"]
    assert {f"{f}-{h}" for f in ("cnn", "colour") for h in ("knn", "xgboost", "mlp", "logreg")} | {"ensemble"} \
        == set(heads)
    assert report["images"] == 6021 and report["folds"] == 5 and report["grouped"] is True
    grouping = report["dataset"]["grouping"]
    assert grouping["near_duplicates"]["clusters"] > 400 and grouping["artists"]["known"] == 71
    assert grouping["inputs_without_column"] == ["covers-5genre"]
    best = report["best_head"]
    assert heads[best]["balanced_accuracy"] >= FROZEN_BEST_BALANCED_ACCURACY
    for h in heads.values():
        cm = np.array(h["confusion_matrix"])
        assert cm.sum() == 6021 and len(h["recall"]) == 9
        assert abs(h["balanced_accuracy"] - np.mean(list(h["recall"].values()))) < 1e-9
    # calibration, measured honestly (cross-fitted), lowers the best head's ECE
    cal = report["calibration"]["heads"][best]
    assert cal["ece_after"] < cal["ece_before"] and cal["log_loss_after"] < cal["log_loss_before"]
    # per store, and across stores for the genres both have
    assert set(report["by_source"]) == {"covers-5genre", "covers-spotify"}
    assert report["by_source"]["covers-spotify"]["genres"] == ["classical", "country", "hiphop", "jazz", "metal",
                                                               "reggae"]
    # collections held out of training: each collection's covers of the genres another holds (with the Spotify
    # set's own source column, its two playlists), and the input-level split that differs from those
    held = report["heldout"]
    assert set(held) == {"heldout:covers-5genre", "heldout:covers-spotify/alfjohnfred",
                         "heldout:covers-spotify/tjaarek", "cross:covers-5genre→covers-spotify"}
    for split in held.values():
        h = split["heads"][best]
        assert set(h["recall"]) == set(split["genres"]) and "gap" in h
        assert abs(h["balanced_accuracy"] - np.mean(list(h["recall"].values()))) < 1e-3
        for t in ("0.5", "0.7"):
            kept = h["precision_at"][t]
            assert kept["precision"] is None if kept["kept"] == 0 else 0 <= kept["precision"] <= 1
    assert held["heldout:covers-5genre"]["genres"] == ["country", "hiphop"]
    summary = report["heldout_summary"][best]
    assert summary["balanced_accuracy"] == pytest.approx(
        np.mean([split["heads"][best]["balanced_accuracy"] for split in held.values()]), abs=1e-3)
    # the default head: the best held-out figure among heads within 0.02 of the best in-collection one
    assert best == best_head(report)
    top = max(heads.values(), key=lambda h: h["balanced_accuracy"])["balanced_accuracy"]
    assert heads[best]["balanced_accuracy"] >= top - HEAD_CV_TOLERANCE
    # the fp32 heads scored on int8 features of the frozen featurizer: every head measured, none far off (7-bit
    # weights cost up to 0.018 on an AVX2 CPU), and the default precision follows the 0.01 rule on exactly these
    change = report["variants"]["int8"]["balanced_accuracy_change"]
    assert set(change) == set(heads) and min(change.values()) >= -0.03
    assert any(c != 0 for n, c in change.items() if n.startswith("cnn-"))
    held_change = [h["variants_change"]["int8"] for h in report["heldout_summary"].values()]
    assert choose_precision(report) == ("int8" if min([*change.values(), *held_change]) >= -0.01 else "fp32")
    # the shipped model is the best one CV measured: the frozen featurizer's best head, or a
    # fine-tuned network whose (fine-tuned-in-each-fold) CV beat exactly this figure
    shipped = Model()
    cv = shipped.manifest["cv"]
    assert shipped.manifest["training_set"]["sha256"] == report["dataset"]["sha256"]
    assert shipped.default_head == best_head(cv)
    if "beat_frozen" in cv:
        assert cv["finetuned_in_each_fold"] and cv["folds"] == 5
        frozen = cv["beat_frozen"]
        # the same figure up to the last bits of the features, which can differ between machines (onnxruntime picks
        # its kernels by CPU) and move a borderline cover: 0.00012 (one cover) from the machine that built the model
        assert abs(frozen["balanced_accuracy"] - heads[frozen["head"]]["balanced_accuracy"]) < 0.002
        assert cv["heads"][shipped.default_head]["balanced_accuracy"] > heads[best]["balanced_accuracy"]
    else:
        assert shipped.default_head == best


def test_evaluate_on_a_csv_subset(covers_dir, tmp_path):
    with open(covers_dir / "labels.csv", newline="") as f:
        labels = list(csv.DictReader(f))
    picked = [r for g in sorted({r["genre"] for r in labels}) for r in [x for x in labels if x["genre"] == g][:30]]
    csv_path = tmp_path / "subset.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre"])
        w.writerows([[str(covers_dir / r["path"]), r["genre"]] for r in picked])
    first = CliRunner().invoke(app, ["evaluate", str(csv_path), "--folds", "3", "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.output.strip().splitlines()[-1])
    assert report["images"] == 150 and report["folds"] == 3
    for name, h in report["heads"].items():
        assert len(h["balanced_accuracy_per_fold"]) == 3
        # three folds of 50 covers: the pooled accuracy is the mean of the folds'
        assert abs(np.mean(h["accuracy_per_fold"]) - h["accuracy"]) < 1e-3, name
        assert np.array(h["confusion_matrix"]).sum() == 150
    # same seed, same folds, features now from the cache: identical figures
    again = json.loads(CliRunner().invoke(app, ["evaluate", str(csv_path), "--folds", "3", "--json"])
                       .output.strip().splitlines()[-1])
    assert {n: h["balanced_accuracy"] for n, h in again["heads"].items()} == \
        {n: h["balanced_accuracy"] for n, h in report["heads"].items()}
