"""``jobs/ray_job.py`` run as ``ray job submit`` runs it, on a local Ray (no ``RAY_ADDRESS``): one output row per
catalog row, the same labels as the local engine, and a one-line usage error without its two arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import needs
import pandas as pd
from typer.testing import CliRunner

from scorer.cli import app
from tests.conftest import REPO

JOB = REPO / "jobs" / "ray_job.py"


def _job(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray, started by the job
    return subprocess.run([sys.executable, str(JOB), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          check=False, timeout=600)


def test_ray_job_scores_a_small_catalog_on_a_local_ray(sample_covers, tmp_path):
    needs.module("ray", "the ray extra is not installed (pip install 'scorer[ray]')")
    covers = sample_covers[::4]
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("id,cover_url\n" + "".join(f"c{i},{p}\n" for i, p in enumerate(covers))
                       + f"gone,{tmp_path / 'gone.jpg'}\nempty,\n")
    out = tmp_path / "scores"
    r = _job(str(catalog), str(out), "--keep", "rock,country", "--shard-rows", "4")
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["rows"] == len(covers) + 2 == 12 and summary["scored"] == len(covers)
    assert json.loads((out / "_scorer" / "summary.json").read_text())["engine"] == "ray"
    rows = pd.read_parquet(out).sort_values("id").reset_index(drop=True)
    assert sorted(rows.id) == sorted([f"c{i}" for i in range(len(covers))] + ["gone", "empty"])  # one row each
    status = dict(zip(rows.id, rows.status))
    assert (status.pop("gone"), status.pop("empty")) == ("not_found", "missing_url")
    assert set(status.values()) == {"ok"}
    assert summary["failed"] == {"not_found": 1, "missing_url": 1}
    assert rows.kept.sum() == summary["kept_total"] > 0
    assert set(rows.genre[rows.kept]) <= {"rock", "country"}

    local = tmp_path / "local.parquet"
    result = CliRunner().invoke(app, ["catalog", str(catalog), "--out", str(local), "--keep", "rock,country"])
    assert result.exit_code == 0, result.output
    local_rows = pd.read_parquet(local).sort_values("id").reset_index(drop=True)
    for col in ("id", "status", "genre", "kept"):
        assert rows[col].tolist() == local_rows[col].tolist(), col


def test_ray_job_without_its_arguments_says_how_to_call_it():
    r = _job("catalog.csv")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == ("usage: python jobs/ray_job.py CATALOG OUT [scorer catalog options] "
                                "(CATALOG and OUT come first)")
    r = _job("--help")
    assert r.returncode == 0 and "--keep" in r.stdout and "Traceback" not in r.stderr
