"""benchmarks/speed.py runs end to end on a few real covers and writes its JSON and Markdown (no timing asserted:
the figures' relations are, since the limit and the ratios are computed from the measured seconds)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scorer.model import Model
from tests.conftest import REPO


@pytest.mark.shared_data
def test_speed_catalog_case_on_eight_covers(covers_dir, tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--covers", "8", "--reps", "1", "--sample", "8",
                        "--repo", str(REPO), "--out", str(tmp_path), "--name", "tiny"],
                       cwd=REPO, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "tiny.json").read_text())
    catalog = data["catalog"]
    (rep,) = catalog["reps"]
    assert catalog["covers"] == 8 and rep["sample"] == 8
    shipped = Model()
    assert (rep["precision"], rep["head"]) == (shipped.precision, shipped.default_head)  # scorer catalog's defaults
    per_cover_s = (rep["decode_ms"] + rep["score_ms"]) / 1000
    assert rep["limit"] == pytest.approx(data["cores"] / per_cover_s, abs=0.05)
    assert rep["steady_over_limit"] == pytest.approx(rep["steady"] / rep["limit"], abs=0.01)
    assert rep["whole"] < rep["steady"]  # the whole run adds start-up and the write to the same covers
    table = (tmp_path / "tiny.md").read_text()
    assert "`scorer catalog`, 8 local covers" in table and table in r.stdout
