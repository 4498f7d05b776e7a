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
