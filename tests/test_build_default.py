"""``python -m scorer.training.build_default`` (what builds the shipped ``models/default``), run on a few covers
into a temporary folder with two cheap heads: the model it writes is one ``scorer info`` and ``scorer catalog``
read, with the figures it printed."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

from typer.testing import CliRunner

from scorer.cli import app
from tests.conftest import REPO


def _build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scorer.training.build_default", *args], cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=900)


def test_build_default_writes_a_model_scorer_reads(spotify_dir, tmp_path, monkeypatch):
    rows = list(csv.DictReader(open(spotify_dir / "labels.csv", newline="")))
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre", "artist"])
        for g in ("country", "hiphop", "jazz"):
            w.writerows([spotify_dir / r["path"], g, r["artist"]] for r in [r for r in rows if r["genre"] == g][:12])
    out = tmp_path / "model"
    r = _build("--data", str(labels), "--out", str(out), "--folds", "2", "--name", "tiny",
               "--heads", "cnn-logreg,cnn-knn")
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert r.stdout == f"{out}: {manifest['version']}, default head {manifest['default_head']}\n"
    assert manifest["name"] == "tiny" and re.fullmatch(r"tiny-\d{8}-[0-9a-f]{8}", manifest["version"])
    assert manifest["genres"] == ["country", "hiphop", "jazz"] and manifest["training_set"]["images"] == 36
    assert set(manifest["heads"]) == {"cnn-logreg", "cnn-knn"} and manifest["cv"]["folds"] == 2
    assert manifest["default_head"] in {"cnn-logreg", "cnn-knn", "ensemble"}
    # the frozen ImageNet network is referenced in the repository's models/featurizer, not copied
    cnn = manifest["featurizers"]["cnn"]
    assert (out / cnn["file"]).resolve() == REPO / "models" / "featurizer" / "efficientnet-lite0.onnx"
    assert not list(out.rglob("*.onnx"))
    assert re.search(r"seconds: reading [\d.]+, features [\d.]+, .* [\d.]+ in all", r.stderr)

    monkeypatch.setenv("COLUMNS", "200")
    info = CliRunner().invoke(app, ["info", "--model", str(out)])
    assert info.exit_code == 0, info.output
    text = info.stdout
    assert text.startswith(f"tiny {manifest['version']}+{cnn['default_precision']} ({out}) · genres: country, "
                           "hiphop, jazz")
    assert "trained on 36 covers" in text
    for name, h in manifest["cv"]["heads"].items():  # the CV table shows the figures the build measured
        assert re.search(rf"^\s*{re.escape(name)}\s+{h['accuracy']:.3f}\s+{h['balanced_accuracy']:.3f}\s", text,
                         re.M), name

    catalog = tmp_path / "catalog.csv"
    catalog.write_text("cover_url\n" + "".join(f"{spotify_dir / r['path']}\n" for r in rows[:3]))
    scored = CliRunner().invoke(app, ["catalog", str(catalog), "--out", str(tmp_path / "s.parquet"),
                                      "--model", str(out), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout.strip().splitlines()[-1])["scored"] == 3


def test_build_default_bad_heads_is_one_line():
    r = _build("--heads", "cnn-forest")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines()[-1].startswith("build_default.py: error: argument --heads: cnn-forest: "
                                                        "use some of knn, xgboost, mlp, logreg, cnn-knn")
