"""``scorer report``: HTML reports of labelled covers and of scored outputs, rendered in real Chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from needs import missing
from PIL import Image
from typer.testing import CliRunner

from scorer.cli import app
from scorer.insight.page import MARKER
from scorer.training.occlusion import occlusion_map, overlay, patch_positions
from scorer.training.project import pca
from tests.browser import Chromium, find_chromium
from tests.fakes.cdn import CoverCDN

GENRES = ["country", "electronic", "hiphop", "pop", "rock"]


def invoke(*args: object):
    return CliRunner().invoke(app, [*map(str, args)])


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium. Required in CI (CI=true: .ci/run installs it); elsewhere the test skips."""
    exe = find_chromium()
    if exe is None:
        missing("chromium not installed (apt-get install chromium)")
    with Chromium(exe) as b:
        yield b


def render(browser: Chromium, index: Path, shot: Path) -> dict:
    """Open a report, let every image load, screenshot the whole page; returns what rendered."""
    browser.open(index.resolve().as_uri())
    browser.full_height()
    browser.wait_for("Array.from(document.images).every(i => i.complete)")
    facts = browser.evaluate("""({
        images: document.images.length,
        loaded: Array.from(document.images).filter(i => i.naturalWidth > 0).length,
        sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
        heatmaps: document.querySelectorAll('svg.heatmap').length,
        reliability: document.querySelectorAll('svg.reliability').length,
        curves: document.querySelectorAll('svg.reliability path.curve').length,
        points: document.querySelectorAll('circle.pt').length,
        external: Array.from(document.querySelectorAll('[src],[href]'))
            .map(e => e.getAttribute('src') || e.getAttribute('href'))
            .filter(u => /^(https?:)?\\/\\//.test(u)).length,
    })""")
    png = browser.screenshot(shot)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    facts["non_white"] = float((pixels.min(axis=2) < 235).mean())
    facts["colours"] = len(np.unique(pixels.reshape(-1, 3)[::7], axis=0))
    facts["height"] = pixels.shape[0]
    if os.environ.get("SCORER_SCREENSHOTS"):  # keep them to look at
        Path(os.environ["SCORER_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(os.environ["SCORER_SCREENSHOTS"]) / shot.name)
    return facts


def shown(browser: Chromium, target: str) -> str:
    return browser.evaluate(f"document.querySelector('.filters[data-target={target}] .shown').textContent")


def toggle(browser: Chromium, selector: str) -> None:
    """Click a control the way a user does (the page's own change handlers run)."""
    browser.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


def choose(browser: Chromium, target: str, key: str, value: str) -> None:
    browser.evaluate(f"""(() => {{
        const s = document.querySelector('.filters[data-target={target}] select[data-key={key}]');
        s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change', {{bubbles: true}})); }})()""")


def visible(browser: Chromium, selector: str) -> int:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll({json.dumps(selector)})).filter(e => e.getClientRects().length).length")


# ---------------------------------------------------------------------------------------- labelled


@pytest.fixture(scope="module")
def labelled_report(covers_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("labelled") / "report"
    result = invoke("report", covers_dir, "--out", out, "--per-genre", 20, "--folds", 3, "--grid", 6,
                    "--activations", 2)
    assert result.exit_code == 0, result.output
    return out


def test_labelled_report_renders(labelled_report, browser, tmp_path):
    facts = render(browser, labelled_report / "index.html", tmp_path / "labelled.png")
    assert facts["sections"] == ["sight-check", "evaluation", "embedding", "activations"]
    # 6 covers x 5 genres in the grid, then 2 correct + 2 wrong covers, each with its map
    assert facts["images"] == 30 + 4 * 2
    assert facts["loaded"] == facts["images"]
    assert facts["heatmaps"] == 9  # 2 featurizers x 4 heads, and the ensemble
    assert facts["reliability"] == 1 and facts["curves"] == 2  # the best head, before and after calibration
    assert facts["points"] == 100
    assert facts["external"] == 0  # opens with no network
    assert facts["non_white"] > 0.15 and facts["colours"] > 2000, facts
    assert (labelled_report / MARKER).exists()
    assert len(list((labelled_report / "img").glob("*.jpg"))) == 38 + 5 * 20  # + the map's thumbnails


def test_labelled_report_filters_and_cover_toggle(labelled_report, browser, tmp_path):
    browser.open((labelled_report / "index.html").resolve().as_uri())
    assert shown(browser, "embedding-map") == "100 shown"
    toggle(browser, '.filters[data-target=embedding-map] input[value=rock]')
    assert shown(browser, "embedding-map") == "80 shown"
    assert visible(browser, "#embedding-map circle.pt") == 80
    assert visible(browser, '#embedding-map circle.pt[data-genre="rock"]') == 0
    assert visible(browser, "#embedding-map .thumb") == 0
    toggle(browser, "input[data-toggle-class=covers]")
    assert visible(browser, "#embedding-map .thumb") == 80  # 20 per genre, rock still filtered out
    toggle(browser, '.filters[data-target=sight-grid] input[value=pop]')
    assert shown(browser, "sight-grid") == "24 shown"
    browser.screenshot(tmp_path / "filtered.png")


def test_labelled_report_figures_match_the_page(labelled_report):
    page = (labelled_report / "index.html").read_text()
    for text in ("rows: true genre, normalised per true genre", "3-fold stratified cross-validation",
                 "100 covers", "Occlusion sensitivity", "Correct predictions", "Wrong predictions",
                 "Expected calibration error", "a calibration fitted without its covers"):
        assert text in page, text


def test_report_from_csv_with_a_given_evaluation(covers_dir, tmp_path):
    """A CSV of labelled covers, `scorer evaluate --json` reused as the evaluation, and t-SNE."""
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre"])
        for g in GENRES[:3]:
            for p in sorted((covers_dir / g).glob("*.jpg"))[:8]:
                w.writerow([p, g])
    ev = invoke("evaluate", labels, "--folds", 2, "--json")
    assert ev.exit_code == 0, ev.output
    cv_file = tmp_path / "cv.json"
    cv_file.write_text(ev.stdout.strip().splitlines()[-1])
    cv = json.loads(cv_file.read_text())
    out = tmp_path / "report"
    result = invoke("report", labels, "--out", out, "--evaluation", cv_file, "--folds", 2, "--projection", "tsne",
                    "--grid", 3, "--activations", 1, "--activation-head", "cnn-mlp")
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert "t-SNE" in page and "from <code>" in page and "cnn-mlp" in page
    for m in cv["heads"].values():
        assert f"<b>{m['balanced_accuracy']:.3f}</b>" in page
    assert page.count('class="heatmap"') == len(cv["heads"])


@pytest.mark.parametrize(("args", "message"), [
    (["--projection", "mds"], "--projection mds: use one of pca, tsne, umap"),
    (["--heads", "knn,svm"], "unknown head kind(s) svm"),
    (["--activation-head", "cnn-svm"], "--activation-head cnn-svm: use one of"),
])
def test_bad_arguments_fail_before_any_work(covers_dir, tmp_path, args, message):
    out = tmp_path / "report"
    result = invoke("report", covers_dir, "--out", out, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_out_must_be_new_empty_or_an_earlier_report(tmp_path, covers_dir):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    result = invoke("report", covers_dir, "--out", busy)
    assert result.exit_code == 2 and "not empty" in result.output
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    bad_eval = tmp_path / "cv.json"
    bad_eval.write_text("{}")
    result = invoke("report", covers_dir, "--out", tmp_path / "r", "--evaluation", bad_eval)
    assert result.exit_code == 2 and "not the output of `scorer evaluate --json`" in result.output
    result = invoke("report", tmp_path / "missing", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "no such file or folder" in result.output


# ------------------------------------------------------------------------------------------- scored


@pytest.fixture(scope="module")
def scored(sample_covers, tmp_path_factory) -> tuple[Path, list[dict]]:
    """A catalog of real covers: local files, covers from a loopback CDN, and rows that fail."""
    folder = tmp_path_factory.mktemp("scored")
    rows = [{"id": f"local-{i}", "title": f"Album {i}", "artist": "Someone", "cover_url": str(p),
             "label": p.parent.name} for i, p in enumerate(sample_covers[::2])]
    rows.append({"id": "lost", "title": "Lost", "artist": "Nobody", "cover_url": str(folder / "missing.jpg"),
                 "label": "rock"})
    with CoverCDN(sample_covers) as cdn:
        rows += [{"id": f"web-{i}", "title": f"Web {i}", "artist": "Remote", "cover_url": f"{cdn.base}/img/w{i}.jpg",
                  "label": ""} for i in range(6)]
        rows.append({"id": "gone", "title": "Gone", "artist": "Remote", "cover_url": f"{cdn.base}/bad/gone",
                     "label": ""})
        catalog = folder / "catalog.csv"
        with open(catalog, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        out = folder / "scored.parquet"
        result = invoke("catalog", catalog, "--out", out, "--keep", "rock,pop", "--allow-private-hosts")
        assert result.exit_code == 0, result.output
    return out, pq.read_table(out).to_pylist()


def test_scored_report_gallery(scored, browser, tmp_path):
    out_file, rows = scored
    report = tmp_path / "report"
    # the CDN is gone: covers fetched while scoring must come from the cover cache
    result = invoke("report", out_file, "--out", report, "--allow-private-hosts", "--retries", 0, "--timeout", 5)
    assert result.exit_code == 0, result.output
    facts = render(browser, report / "index.html", tmp_path / "scored.png")
    assert facts["sections"] == ["summary", "calibration", "labels", "gallery"]
    assert facts["heatmaps"] == 1
    # the model's reliability (out of fold and on its held-out collections, each before and after calibration)
    # and the labelled rows' own
    assert facts["reliability"] == 2 and facts["curves"] == 5
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == len(rows) - 2
    assert facts["images"] == len(ok) and facts["loaded"] == len(ok)  # failed rows get a placeholder
    assert visible(browser, "#gallery-tiles .tile") == len(rows)
    assert visible(browser, "#gallery-tiles .tile.err") == 2
    assert facts["non_white"] > 0.05 and facts["colours"] > 2000, facts

    kept = [r for r in rows if r["kept"]]
    assert kept, "the sample should keep some rock or pop covers"
    choose(browser, "gallery-tiles", "kept", "true")
    assert shown(browser, "gallery-tiles") == f"{len(kept)} shown"
    choose(browser, "gallery-tiles", "kept", "")
    top = ok[0]["genre"]
    toggle(browser, f'.filters[data-target=gallery-tiles] input[value="{top}"]')
    assert shown(browser, "gallery-tiles") == f"{len(rows) - sum(r['genre'] == top for r in ok)} shown"
    choose(browser, "gallery-tiles", "status", "failed")
    assert shown(browser, "gallery-tiles") == "2 shown"
    page = (report / "index.html").read_text()
    assert "not_found" in page and "no such file" in page
    assert f"{len(rows)} rows: {len(ok)} scored, 2 failed, {len(kept)} kept" in page
    labelled = [r for r in ok if r["label"]]
    accuracy = sum(r["label"] == r["genre"] for r in labelled) / len(labelled)
    assert f"{len(labelled)} scored rows whose <code>label</code> is one of the model's genres: " \
           f"accuracy {accuracy:.3f}" in page


def test_scored_report_samples_large_outputs(scored, tmp_path):
    out_file, rows = scored
    report = tmp_path / "report"
    result = invoke("report", out_file, "--out", report, "--limit", 5)
    assert result.exit_code == 0, result.output
    page = (report / "index.html").read_text()
    assert f"Showing 5 of {len(rows)} rows" in page
    assert page.count('class="tile') == 5
    # an earlier report is replaced whole
    result = invoke("report", out_file, "--out", report, "--limit", 3)
    assert result.exit_code == 0, result.output
    assert (report / "index.html").read_text().count('class="tile') == 3


def test_scored_report_of_a_dataset_folder(scored, tmp_path):
    out_file, rows = scored
    dataset = tmp_path / "dataset"
    catalog = out_file.parent / "catalog.csv"
    result = invoke("catalog", catalog, "--out", dataset, "--shard-rows", 10, "--keep", "rock,pop")
    assert result.exit_code == 0, result.output
    assert len(list(dataset.glob("part-*.parquet"))) == 3
    report = tmp_path / "report"
    result = invoke("report", dataset, "--out", report)
    assert result.exit_code == 0, result.output
    page = (report / "index.html").read_text()
    assert page.count('class="tile') == len(rows)
    assert "Every row, in input order" in page


def test_scored_report_refuses_foreign_parquet(tmp_path):
    import pyarrow as pa

    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), path)
    result = invoke("report", path, "--out", tmp_path / "r")
    assert result.exit_code == 2 and "not written by scorer" in result.output
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------- pieces


def test_occlusion_finds_the_region_the_prediction_rests_on():
    """A "model" that only looks at a bright square: the map must light up there and nowhere else."""
    image = np.zeros((96, 96, 3), np.uint8)
    image[8:32, 56:88] = 255

    def predict(batch: np.ndarray) -> np.ndarray:
        p = batch[:, 8:32, 56:88].mean(axis=(1, 2, 3)) / 255.0
        return np.stack([p, 1 - p], axis=1)

    heat, base = occlusion_map(image, predict, target=0, patch=16, stride=8)
    assert base == pytest.approx(1.0)
    assert heat.shape == (96, 96)
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert 8 <= y < 32 and 56 <= x < 88
    assert heat[60:, :40].max() == 0  # far from the square, hiding pixels changes nothing
    assert heat[16:24, 64:80].min() > 0.1
    painted = overlay(image, heat)
    assert painted.shape == image.shape and painted.dtype == np.uint8
    assert painted[70, 20].tolist() == [0, 0, 0]  # untouched where the drop is zero


def test_patch_positions_cover_the_edges():
    assert patch_positions(224, 48, 16)[-1] == 224 - 48
    assert patch_positions(100, 48, 16) == [0, 16, 32, 48, 52]
    with pytest.raises(ValueError):
        patch_positions(32, 48, 16)


def test_pca_explains_a_line():
    t = np.linspace(-1, 1, 50)
    x = np.stack([t, 2 * t, np.zeros_like(t)], axis=1) + np.random.default_rng(0).normal(0, 1e-3, (50, 3))
    points, ratio = pca(x)
    assert points.shape == (50, 2)
    assert ratio[0] > 0.999
    again, _ = pca(x[::-1])
    assert np.allclose(points[::-1], again, atol=1e-9)  # sign is deterministic
