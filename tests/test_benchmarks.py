"""The benchmark harness itself runs and writes its JSON and Markdown (tiny inputs; no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_run_writes_json_and_markdown(tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--only", "startup", "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "quick.json").read_text())
    help_s = data["startup"]["scorer --help (s)"]
    assert help_s["reps"] == 5 and 0 < help_s["min"] <= help_s["median"] <= help_s["max"]
    assert data["environment"]["providers"][-1] == "CPUExecutionProvider"
    table = (tmp_path / "quick.md").read_text()
    assert "`scorer --help`" in table and table in r.stdout


@pytest.mark.shared_data
def test_model_only_case_on_real_covers(covers_dir):
    r = subprocess.run([sys.executable, "-m", "benchmarks.model", "--precision", "fp32", "int8", "--batch", "2",
                        "--reps", "1", "--images", "4"], cwd=REPO, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["precision"], x["batch"], x["images"]) for x in rows] == [("fp32", 2, 4), ("int8", 2, 4)]
    assert all(x["img_per_s"]["median"] > 0 for x in rows)


@pytest.mark.shared_data
def test_also_benchmark_measures_every_case(covers_dir):
    r = subprocess.run([sys.executable, "-m", "benchmarks.also", "--per-genre", "1", "--reps", "1"], cwd=REPO,
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["case"] for x in rows[:4]] == ["alone", "also, shared network", "also, own network", "embeddings"]
    assert all(x["covers"] == 5 and x["covers_per_second"]["median"] > 0 for x in rows[:4])
    sizes = rows[4]
    assert sizes["with embeddings"] > sizes["without embeddings"] + 1280  # 1,280 float16 features, compressed


@pytest.mark.shared_data
def test_similar_benchmark_times_a_small_index(covers_dir, tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.similar", "--rows", "2000", "--real", "16", "--reps", "1",
                        "--out", str(tmp_path / "similar")], cwd=REPO, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "similar.json").read_text())
    assert data["rows"] == 2000 and data["dim"] == 1280 and data["file_mb"] > 0
    assert data["check"]["rank_1_cover"] and data["check"]["rank_1_similarity"] > 0.95
    for key in ("read_index_s", "search_1_queries_ms", "search_100_queries_ms", "library_again_s",
                "command_one_cover_s"):
        assert 0 < data[key]["min"] <= data[key]["median"] <= data[key]["max"], key
    assert (tmp_path / "similar.md").read_text() in r.stdout


@pytest.mark.shared_data
def test_near_duplicate_benchmark_on_a_spread_of_covers(covers_dir, spotify_dir, tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.near_duplicates", "--limit", "200", "--out",
                        str(tmp_path / "nd")], cwd=REPO, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "nd.json").read_text())
    assert 200 <= data["covers"] <= 210 and sum(data["pairs"].values()) >= data["covers"] * (data["covers"] - 1) // 2
    rows = data["thresholds"]
    at_or_above = [row["pairs_at_or_above"] for row in rows]
    assert at_or_above == sorted(at_or_above, reverse=True)  # fewer pairs as the threshold rises
    assert all(row["other_at_or_above"] <= row["pairs_at_or_above"] for row in rows)
    for ranked in data["copies_original_ranked"].values():  # where a re-encoded copy's original ranks
        assert 0 <= ranked["first"] <= ranked["first_but_for_its_near_duplicates"] <= 1
        assert ranked["first"] <= ranked["top_3"] <= ranked["top_10"] <= 1


def _bench(module: str, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args], cwd=REPO, capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_fetch_decode_counts_every_link(cdn, no_proxy, tmp_path):
    links = tmp_path / "links.tsv"
    links.write_text("".join(f"{cdn.base}/img/r{i}.jpg\tg/{i}.jpg\n" for i in range(9)) + f"{cdn.base}/bad/gone\tg/x\n")
    (row,) = _json_lines(_bench("fetch_decode", str(links), "--concurrency", "4").stdout)
    assert (row["rows"], row["ok"]) == (10, 9)
    assert row["covers_per_s"] > 0 and row["seconds"] > 0 and row["peak_rss_mb"] > 0


@pytest.mark.shared_data
def test_fetch_links_fetches_and_scores_a_few_links(covers_dir, tmp_path):
    from tests.conftest import SHARED

    links = tmp_path / "links.tsv"
    links.write_text("".join((SHARED / "bandcamp" / "dataset-links.tsv").read_text().splitlines(True)[:12]))
    (row,) = _json_lines(_bench("fetch_links", "--links", str(links), "--latency-ms", "0").stdout)
    assert row["latency_ms"] == 0
    fetched, scored = row["fetch_decode"], row["scorer_links"]
    assert (fetched["rows"], fetched["ok"], scored["rows"], scored["scored"]) == (12, 12, 12, 12)
    assert fetched["covers_per_s"] > 0 and scored["covers_per_s"] > 0 and scored["wall_s"] > 0
    assert scored["peak_rss_mb"] > fetched["peak_rss_mb"] > 0  # the model is loaded only for scoring


@pytest.mark.shared_data
def test_nightly_reruns_only_the_changed_rows(covers_dir):
    first, rerun = _json_lines(_bench("nightly", "--rows", "30", "--covers", "6", "--changed", "0.1").stdout)
    assert (first["rows"], first["run"], first["scored"], first["inferred"]) == (30, "first", 30, 6)
    assert (first["rows_rescored"], first["rows_carried"]) == (30, 0)
    assert (rerun["rows"], rerun["run"], rerun["scored"]) == (30, "rerun, 3 rows changed", 30)
    assert (rerun["inferred"], rerun["rows_rescored"], rerun["rows_carried"]) == (3, 3, 27)
    assert all(r["wall_s"] > 0 and r["peak_rss_mb"] > 0 for r in (first, rerun))


@pytest.mark.shared_data
def test_library_benchmark_scores_every_cover_each_way(covers_dir):
    rows = _json_lines(_bench("library", "--per-genre", "2").stdout)
    assert [r["case"] for r in rows] == ["scorer.score: paths in a DataFrame", "scorer.score: bytes in a list",
                                         "scorer.score: PIL images in a list", "scorer catalog (whole process)"]
    assert all((r["rows"], r["ok"]) == (10, 10) and r["rows_per_second"] > 0 for r in rows)  # 5 genres x 2


@pytest.mark.shared_data
def test_train_speed_times_each_stage(covers_dir, tmp_path):
    out = tmp_path / "train_speed"
    _bench("train_speed", "--per-label", "10", "--heads", "cnn-logreg", "--out", str(out))
    (run,) = json.loads(out.with_suffix(".json").read_text())
    assert (run["covers"], run["labels"], run["heads"]) == (30, ["country", "hiphop", "rock"], ["cnn-logreg"])
    assert run["default_head"] == "cnn-logreg" and 0 <= run["default_head_cv_balanced_accuracy"] <= 1
    stages = run["stages_seconds"]
    assert list(stages) == ["reading", "features", "cv", "calibration", "final_fit", "writing"]
    assert stages["features"] > 0 and sum(stages.values()) <= run["total_seconds"] + 0.5  # rounded to 0.1 s each
    assert run["cores"] >= 1 and len(run["load_average_before"]) == 3


@pytest.mark.shared_data
def test_featurizers_benchmark_on_a_few_covers_of_each_set(covers_dir, spotify_dir, tmp_path):
    out = tmp_path / "featurizers"
    _bench("featurizers", "--per-genre", "4", "--candidates", "lite0@224", "--folds", "2", "--out", str(out))
    data = json.loads(out.with_suffix(".json").read_text())
    assert (data["covers"], data["folds"]) == (4 * 5 + 4 * 6, 2)  # 5 Discogs genres, 6 Spotify ones
    (row,) = data["rows"]
    assert (row["featurizer"], row["input"], row["cost_vs_lite0"], row["gain_vs_lite0"]) == (
        "EfficientNet-Lite0", 224, 1.0, 0.0)
    assert row["img_per_s"] > 0 and list(row["logreg"]["by_C"]) == ["0.0001", "0.0003", "0.001", "0.003"]
    best = max(row["logreg"]["by_C"].items(), key=lambda kv: kv[1])
    assert (str(row["logreg"]["C"]), row["logreg"]["balanced_accuracy"]) == best
    assert len(row["knn"]["recall"]) == 9 and 0 <= row["knn"]["balanced_accuracy"] <= 1
    table = out.with_suffix(".md").read_text().splitlines()
    assert len(table) == 3 and table[2].startswith(f"| EfficientNet-Lite0 | 224 | {row['img_per_s']} | 1.0x | "
                                                   f"{best[1]:.3f} ")


@pytest.mark.shared_data
def test_transfer_benchmark_frozen_try_on_a_few_covers(covers_dir, spotify_dir, tmp_path):
    """20 covers of each genre of each set: the fewest that still form held-out splits (the fine-tuned tries are
    not run here: each fine-tunes a network per split)."""
    out = tmp_path / "transfer"
    _bench("transfer", "--per-genre", "20", "--tries", "frozen-logreg", "--out", str(out))
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["splits"] == {"folds": 5, "heldout": ["heldout:covers-5genre", "heldout:covers-spotify/tjaarek"]}
    (name, r), = data["tries"].items()
    assert name == "frozen-logreg" and len(r["cv_recall"]) == 9
    assert set(r["by_collection"]) == {"covers-5genre", "covers-spotify/tjaarek"}
    assert list(r["heldout"]) == data["splits"]["heldout"]
    held = [h["balanced_accuracy"] for h in r["heldout"].values()]
    assert r["heldout_mean"] == pytest.approx(sum(held) / len(held), abs=1e-4)
    assert all(0 <= x <= 1 for x in (r["cv"], r["cv_thumbnails"], r["ece_out_of_fold"], *held))
    row = next(line for line in out.with_suffix(".md").read_text().splitlines() if line.startswith("| `frozen-logreg`"))
    assert row.startswith(f"| `frozen-logreg` | {r['cv']:.3f} | ") and f"**{r['heldout_mean']:.3f}**" in row
