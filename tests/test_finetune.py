"""Fine-tuning the CNN: the loss goes down, an interrupted run resumes to the same weights, the
export matches torch, and a fine-tuned model scores through the normal pipeline."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import needs
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from scorer.cli import app

torch = needs.module("torch", "the export extra is not installed (pip install 'scorer[export]')")

from scorer.featurize import FlipAveraged  # noqa: E402
from scorer.model import Model  # noqa: E402
from scorer.training.build_default import finetuned_manifest  # noqa: E402
from scorer.training.dataset import deduplicate  # noqa: E402
from scorer.training.finetune import Recipe, WeightedLoss, augment, build, decode_all, finetune  # noqa: E402

RECIPE = Recipe(epochs=2, batch_size=8, seed=0)


@pytest.fixture(scope="module")
def small(sample_covers):
    """40 real covers, 8 per genre."""
    return deduplicate([(p, p.parent.name) for p in sample_covers])


def eval_loss(model, images: np.ndarray, labels: list[int]) -> float:
    model.eval()
    with torch.no_grad():
        _, logits = model(torch.from_numpy(images))
        return float(torch.nn.functional.cross_entropy(logits, torch.tensor(labels)))


def test_loss_goes_down_and_an_interrupted_run_resumes_to_the_same_weights(small, tmp_path):
    images = decode_all(small.examples, size=224)
    torch.manual_seed(RECIPE.seed)
    before = eval_loss(build("lite0", len(small.genres)), images, small.labels)
    logged: list[str] = []
    interrupted = finetune(small.examples, small.genres, RECIPE, work_dir=tmp_path, log=logged.append, stop_after=1)
    assert len(interrupted.history) == 1 and (tmp_path / "checkpoint.pt").exists()
    resumed = finetune(small.examples, small.genres, RECIPE, work_dir=tmp_path, log=logged.append)
    assert any("resuming after epoch 1/2" in m for m in logged)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    straight = finetune(small.examples, small.genres, RECIPE)
    after = eval_loss(straight.model, images, small.labels)
    assert after < before - 0.2, (before, after)
    a, b = resumed.model.state_dict(), straight.model.state_dict()
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-4
    assert resumed.history[1]["loss"] == pytest.approx(straight.history[1]["loss"], abs=1e-3)


def test_weighted_loss_weighs_covers_not_the_smoothing():
    """Uniform logits cost ln(G) whatever the genre weights (with torch's class weights and label
    smoothing they would not: the smoothing mass would be weighted by the rare genres' weights)."""
    import math

    weights = torch.tensor([0.5, 1.0, 22.0, 0.7])
    loss = WeightedLoss(weights, label_smoothing=0.1)
    y = torch.tensor([0, 1, 3, 3, 0])
    assert float(loss(torch.zeros(5, 4), y)) == pytest.approx(math.log(4), abs=1e-6)
    # a sure, right answer for a rare cover counts 22x: it dominates the mean
    logits = torch.zeros(2, 4)
    logits[1, 2] = 20.0
    y = torch.tensor([0, 2])
    per = torch.nn.functional.cross_entropy(logits, y, reduction="none", label_smoothing=0.1)
    assert float(loss(logits, y)) == pytest.approx(float((0.5 * per[0] + 22 * per[1]) / 22.5), abs=1e-6)


class Scripted:
    """numpy's Generator, but every ``random()`` draw (the coin of each store step, and of each flip) is ``u``."""

    def __init__(self, u: float, seed: int = 0):
        self.u, self.rng = u, np.random.default_rng(seed)

    def random(self, size=None):
        return self.u if size is None else np.full(size, self.u)

    def uniform(self, *args, **kwargs):
        return self.rng.uniform(*args, **kwargs)

    def integers(self, *args, **kwargs):
        return self.rng.integers(*args, **kwargs)


def test_store_augmentation_is_seeded_and_is_what_alters_whole_crops(small):
    """Whole-cover crops (no crop jitter), so what differs from the plain resize is the store step:
    re-compression (coin < 0.5), down- and up-scaling (< 0.3), colour jitter (< 0.5). With every coin
    under its threshold each crop is altered; with every coin over it each is the plain resize."""
    images = torch.from_numpy(decode_all(small.examples[:8]))
    plain = augment(images, np.random.default_rng(0), min_area=1.0, store=False)
    for seed in range(3):
        out = augment(images, np.random.default_rng(seed), min_area=1.0, store=True)
        assert torch.equal(out, augment(images, np.random.default_rng(seed), min_area=1.0, store=True))  # seeded

    def from_plain(u: float, how) -> list[float]:
        """Each crop's distance from the plain resize (or its mirror: the flips' coins are ``u`` too)."""
        out = augment(images, Scripted(u), min_area=1.0, store=True)
        return [min(float(how((out[k] - plain[k]).abs())), float(how((out[k] - plain[k].flip(1)).abs())))
                for k in range(len(images))]

    for u in (0.0, 0.29, 0.49):  # every store step fires (or the two whose threshold is 0.5)
        assert min(from_plain(u, torch.mean)) > 1.0, u
    for u in (0.5, 0.99):  # none fires: the plain resize
        assert max(from_plain(u, torch.max)) < 1e-3, u
    # without the store step, the same whole-cover crops are the plain resize (or its mirror)
    base = augment(images, np.random.default_rng(3), min_area=1.0, store=False)
    for k in range(len(images)):
        assert min(float((base[k] - plain[k]).abs().max()), float((base[k] - plain[k].flip(1)).abs().max())) < 1e-3


def test_bad_recipe_fails_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="--arch lite9"):
        Recipe(arch="lite9")
    with pytest.raises(ValueError, match="--augment colour: use one of store, basic"):
        Recipe(augment="colour")
    with pytest.raises(ValueError, match="--class-weighting sqrt: use one of balanced, none"):
        Recipe(class_weighting="sqrt")
    result = CliRunner().invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "m"), "--finetune",
                                      "--arch", "b7"])
    assert result.exit_code == 2 and "--arch b7: use one of lite0, lite1, lite2" in result.output
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def labels_csv(small, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ft") / "labels.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre"])
        w.writerows((e.path, e.genre) for e in small.examples)
    return path


@pytest.fixture(scope="module")
def trained(labels_csv, tmp_path_factory) -> SimpleNamespace:
    """One ``scorer train --finetune --epochs 1`` for the tests below (with a cache of its own)."""
    tmp = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCORER_CACHE_DIR", str(tmp / "cache"))
        result = CliRunner().invoke(app, ["train", str(labels_csv), "--out", str(tmp / "model"), "--finetune",
                                          "--epochs", "1", "--name", "ft"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp / "model" / "manifest.json").read_text())
    return SimpleNamespace(dir=tmp / "model", cache=tmp / "cache", manifest=manifest,
                           cnn=manifest["featurizers"]["cnn"])


@pytest.fixture(scope="module")
def picked(small, tmp_path_factory) -> SimpleNamespace:
    """Every fifth cover, as a catalog and as decoded images."""
    chosen = small.examples[::5]
    catalog = tmp_path_factory.mktemp("picked") / "catalog.csv"
    with open(catalog, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cover_url"])
        w.writerows([e.path] for e in chosen)
    return SimpleNamespace(catalog=catalog, covers=chosen, images=decode_all(chosen, size=224))


def scored(model_dir: Path, picked: SimpleNamespace, out: Path, *args: str) -> np.ndarray:
    """``scorer catalog`` of the picked covers with the model: every row ok, its head cnn-network; the p_ columns."""
    result = CliRunner().invoke(app, ["catalog", str(picked.catalog), "--out", str(out), "--model", str(model_dir),
                                      *args])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    assert [r["status"] for r in rows] == ["ok"] * len(picked.covers)
    assert {r["head"] for r in rows} == {"cnn-network"}
    genres = json.loads((model_dir / "manifest.json").read_text())["genres"]
    return np.array([[r[f"p_{g}"] for g in genres] for r in rows])


def graph_probabilities(path: Path, images: np.ndarray) -> np.ndarray:
    """The softmax of an exported graph's own genre logits, through onnxruntime."""
    import onnxruntime as ort

    (logits,) = ort.InferenceSession(str(path)).run(["logits"], {"images": images})
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_the_finetuning_checkpoint_is_gone_once_exported(trained):
    # the checkpoint served only a resume
    assert (trained.cache / "finetune").is_dir() and not list((trained.cache / "finetune").iterdir())


def test_a_finetuned_model_scores_with_its_network_and_fits_the_cnn_heads(trained):
    assert trained.manifest["default_head"] == "cnn-network"
    assert set(trained.manifest["heads"]) >= {"cnn-network", "cnn-knn", "cnn-xgboost", "cnn-mlp", "colour-xgboost"}
    assert trained.cnn["file"].startswith("featurizer/") and trained.cnn["finetuning"]["recipe"]["epochs"] == 1


def test_the_export_matches_torch(trained, small):
    meta = json.loads((trained.dir / trained.cnn["file"]).with_suffix(".json").read_text())
    assert meta["outputs"] == {"features": 1280, "logits": len(small.genres)}
    # torch and onnxruntime add the same fp32 products in another order: 1e-3 is far above that, far below a bug
    assert meta["export_check"]["max_abs_diff_features"] < 1e-3
    assert meta["export_check"]["max_abs_diff_logits"] < 1e-3


def test_int8_is_quantized_beside_and_offered_but_not_the_default(trained, small):
    assert trained.cnn["default_precision"] == "fp32"  # without CV figures int8 is not made the default
    int8_meta = json.loads((trained.dir / trained.cnn["variants"]["int8"]["file"]).with_suffix(".json").read_text())
    assert int8_meta["precision"] == "int8" and int8_meta["genres"] == small.genres
    check = int8_meta["quantization_check"]
    assert check["feature_cosine_min"] <= check["feature_cosine_mean"] <= 1
    # a bound on quality, not a figure to reproduce: what int8 keeps of a network depends on the CPU's integer
    # kernels (with or without VNNI) and on the network; a one-epoch network near ImageNet's must keep 0.95
    assert check["feature_cosine_mean"] > 0.95 and check["genre_top1_agreement"] >= 0.75


def test_fp32_scores_are_the_exported_graphs_own_genre_logits(trained, picked, tmp_path):
    got = scored(trained.dir, picked, tmp_path / "scored.parquet")
    np.testing.assert_allclose(got, graph_probabilities(trained.dir / trained.cnn["file"], picked.images), atol=1e-4)


def test_int8_scores_are_the_int8_graphs_own_genre_logits(trained, picked, tmp_path):
    got8 = scored(trained.dir, picked, tmp_path / "scored-int8.parquet", "--precision", "int8")
    int8 = trained.dir / trained.cnn["variants"]["int8"]["file"]
    np.testing.assert_allclose(got8, graph_probabilities(int8, picked.images), atol=1e-4)
    assert not np.allclose(got8, graph_probabilities(trained.dir / trained.cnn["file"], picked.images), atol=1e-4)


def _cv() -> dict:
    """A fine-tuning's CV figures as build_default reads them: the blend wins, flip pays 0.031, int8 costs 0.005."""
    return {"folds": 2, "seed": 0, "fold_seconds": [1.0, 1.0], "blend_share": 0.1,
            "blend_weights": [{"cnn-network": 0.6, "colour-xgboost": 0.4}, {"cnn-network": 0.2, "cnn-mlp": 0.8}],
            "heads": {n: {"accuracy": 0.5, "balanced_accuracy": b, "recall": {}, "balanced_accuracy_per_fold": [b]}
                      for n, b in (("cnn-network", 0.45), ("blend", 0.47), ("cnn-mlp", 0.4))},
            "variants": {"flip": {"balanced_accuracy_change": {"blend": 0.031, "cnn-network": 0.001}},
                         "int8": {"heads": {"blend": {"balanced_accuracy": 0.465},
                                            "cnn-network": {"balanced_accuracy": 0.452}},
                                  "balanced_accuracy_change": {"blend": -0.005, "cnn-network": 0.002}}}}


def test_a_winner_is_shipped_as_build_default_ships_it(trained):
    """A blend, flip TTA when it paid 0.03, int8 when it lost at most 0.01 under CV."""
    shipped = finetuned_manifest(trained.manifest, _cv())
    assert shipped["default_head"] == "blend" and shipped["featurizers"]["cnn"]["tta"] == "flip"
    assert shipped["featurizers"]["cnn"]["default_precision"] == "int8"
    assert shipped["featurizers"]["cnn"]["variants"]["int8"]["cv"]["blend"] == {"balanced_accuracy": 0.465,
                                                                              "change": -0.005}
    assert shipped["blend"]["weights"] == {"cnn-mlp": 0.4, "cnn-network": 0.4, "colour-xgboost": 0.2}
    cv = _cv()
    cv["variants"]["int8"]["balanced_accuracy_change"]["blend"] = -0.02
    assert finetuned_manifest(trained.manifest, cv)["featurizers"]["cnn"]["default_precision"] == "fp32"
    cv = _cv()
    cv["variants"]["flip"]["balanced_accuracy_change"]["blend"] = 0.029  # twice the cost must buy 0.03
    assert "tta" not in finetuned_manifest(trained.manifest, cv)["featurizers"]["cnn"]


def test_a_shipped_blend_with_flip_scores_and_says_so(trained, picked, tmp_path):
    model_dir = tmp_path / "shipped"
    shutil.copytree(trained.dir, model_dir)
    shipped = finetuned_manifest(trained.manifest, _cv())
    (model_dir / "manifest.json").write_text(json.dumps(shipped))
    model = Model(model_dir)
    assert isinstance(model.cnn, FlipAveraged) and "blend" in model.head_names
    info = CliRunner().invoke(app, ["info", "--model", str(model_dir)])
    assert info.exit_code == 0, info.output
    assert "test-time augmentation (--tta none|flip): flip by default" in info.output
    assert "flip under CV: blend +0.031 balanced accuracy" in info.output
    assert "blend: cnn-mlp 0.40" in info.output
    assert "CNN fine-tuned inside each fold" in info.output
    images = picked.images
    blend = model.predict(images, model.head())
    parts = {n: model.predict(images, model.head(n)) for n in shipped["blend"]["weights"]}
    expected = sum(w * parts[n] for n, w in shipped["blend"]["weights"].items())
    np.testing.assert_allclose(blend, expected, atol=1e-5)
    mirrored = np.ascontiguousarray(images[:, :, ::-1])
    np.testing.assert_allclose(model.cnn(images), model.cnn(mirrored), atol=1e-4)  # flip-averaged: mirror-invariant
    assert model.tta == "flip" and model.version.endswith("+int8+flip")
    # --tta none turns it off: another version, so incremental datasets rescore
    plain = Model(model_dir, tta="none")
    assert not isinstance(plain.cnn, FlipAveraged) and plain.version == model.version.removesuffix("+flip")
    assert np.abs(plain.cnn(images) - plain.cnn(mirrored)).max() > 1e-3


def test_evaluate_finetunes_inside_each_fold(labels_csv):
    result = CliRunner().invoke(app, ["evaluate", str(labels_csv), "--finetune", "--epochs", "1", "--folds", "2",
                                      "--json"])
    assert result.exit_code == 0, result.output
    cv = json.loads(result.stdout.strip().splitlines()[-1])
    assert cv["folds"] == 2 and len(cv["fold_seconds"]) == 2
    assert {"cnn-network", "cnn-knn", "cnn-xgboost", "colour-mlp", "ensemble"} <= set(cv["heads"])
    for m in cv["heads"].values():
        assert len(m["balanced_accuracy_per_fold"]) == 2 and len(m["accuracy_per_fold"]) == 2
        assert abs(np.mean(m["accuracy_per_fold"]) - m["accuracy"]) < 1e-3  # two folds of 20 covers
        assert abs(m["balanced_accuracy"] - np.mean(list(m["recall"].values()))) < 1e-9
    ids = cv["featurizers"]["cnn"]
    assert list(ids) == ["fold1", "fold2"] and ids["fold1"] != ids["fold2"]  # a network per fold, on its own rows
    assert "cross_source" not in cv  # one input: nothing to cross
    assert cv["finetuning"]["epochs"] == 1
    assert len(cv["blend_weights"]) == 2 and all(abs(sum(w.values()) - 1) < 1e-3 for w in cv["blend_weights"])
    flip = cv["variants"]["flip"]
    assert {"cnn-network", "blend", "ensemble"} <= set(flip["heads"])
    assert flip["balanced_accuracy_change"]["colour-mlp"] == 0  # flipping leaves the colour histogram alone
    int8 = cv["variants"]["int8"]
    assert {"cnn-network", "blend", "ensemble"} <= set(int8["heads"])
    assert int8["balanced_accuracy_change"]["colour-xgboost"] == 0
    assert any(c != 0 for n, c in int8["balanced_accuracy_change"].items() if n.startswith("cnn-"))


def test_build_default_ships_only_what_beats_the_shipped_model(tmp_path):
    """A fine-tuning whose default head falls under the in-collection floor changes nothing."""
    import subprocess
    import sys

    from scorer.model import default_model_dir
    from scorer.training.build_default import CV_FLOOR

    out = tmp_path / "default"
    out.mkdir()
    shipped = json.loads((default_model_dir() / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(shipped))
    cv = {"heads": {"cnn-network": {"balanced_accuracy": CV_FLOOR - 0.01}}, "finetuning": {"epochs": 1}}
    (tmp_path / "cv.json").write_text(json.dumps(cv))
    before = (out / "manifest.json").read_bytes()
    command = [sys.executable, "-m", "scorer.training.build_default", "--finetune", "--cv", str(tmp_path / "cv.json"),
               "--out", str(out)]
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"< {CV_FLOOR}" in run.stdout and "unchanged" in run.stdout
    assert (out / "manifest.json").read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_the_bar_is_the_held_out_figure_when_both_models_have_one():
    from scorer.training.build_default import beats

    cv = {"heads": {"a": {"balanced_accuracy": 0.46}, "b": {"balanced_accuracy": 0.45}},
          "heldout_summary": {"a": {"balanced_accuracy": 0.30}, "b": {"balanced_accuracy": 0.33}}}
    # b is the default head (best held-out mean within 0.02 of the best in-collection figure)
    assert beats(cv, {"balanced_accuracy": 0.45, "heldout": 0.32, "what": "shipped"})["ship"]
    assert not beats(cv, {"balanced_accuracy": 0.40, "heldout": 0.34, "what": "shipped"})["ship"]
    # a shipped model without held-out figures: the best in-collection figure, within the head tolerance
    assert beats(cv, {"balanced_accuracy": 0.47, "heldout": None, "what": "shipped"})["ship"]
    assert not beats(cv, {"balanced_accuracy": 0.49, "heldout": None, "what": "shipped"})["ship"]
    low = {**cv, "heads": {"a": {"balanced_accuracy": 0.43}, "b": {"balanced_accuracy": 0.43}}}
    assert not beats(low, {"balanced_accuracy": 0.30, "heldout": 0.10, "what": "shipped"})["ship"]


def test_command_defaults_are_the_shipped_recipe():
    """`scorer train/evaluate --finetune` without flags train what the shipped model was measured with."""
    import inspect
    from dataclasses import asdict

    from scorer import api
    from scorer.cli import commands as cli

    recipe = Recipe()
    assert api.TRAIN_SIZE == recipe.size
    # the shipped network was trained with it too
    assert Model().manifest["featurizers"]["cnn"]["finetuning"]["recipe"] == asdict(recipe)
    for command in (cli.evaluate, cli.train):
        params = inspect.signature(command).parameters
        assert {k: params[k].default for k in ("epochs", "arch", "freeze_blocks", "augment", "class_weighting",
                                               "train_size")} \
            == {"epochs": recipe.epochs, "arch": recipe.arch, "freeze_blocks": recipe.freeze_blocks,
                "augment": recipe.augment, "class_weighting": recipe.class_weighting,
                "train_size": recipe.size}, command.__name__
