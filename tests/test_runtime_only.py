"""Scoring needs only the runtime dependencies: the training/export extras are never imported.

``scorer`` runs in a subprocess whose ``sitecustomize`` refuses to import them, the way a
``pip install scorer`` without extras would.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from scorer.cli.demo import draw_covers
from scorer.model import Model

REPO = Path(__file__).resolve().parent.parent
BLOCKED = ("sklearn", "xgboost", "onnxmltools", "skl2onnx", "torch", "scipy", "imagehash")

SITECUSTOMIZE = textwrap.dedent(f"""
    import sys

    BLOCKED = {set(BLOCKED)!r}


    class BlockTrainingExtras:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked: scoring must not need it")
            return None


    sys.meta_path.insert(0, BlockTrainingExtras())
""")


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("block-extras")
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    # the repo root too, so the subprocess finds scorer whether or not it is installed
    path = [str(site), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONSAFEPATH", None)
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_blocker_works(blocked_env, tmp_path):
    r = run([sys.executable, "-c", "import sklearn"], blocked_env, tmp_path)
    assert r.returncode != 0
    assert "ImportError: sklearn is blocked" in r.stderr, r.stderr
    probe = textwrap.dedent(f"""
        import importlib
        for name in {list(BLOCKED)!r}:
            try:
                importlib.import_module(name)
            except ImportError as e:
                print(name, "blocked" if "is blocked" in str(e) else "missing")
            else:
                print(name, "imported")
    """)
    r = run([sys.executable, "-c", probe], blocked_env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [w for name in BLOCKED for w in (name, "blocked")], r.stdout
    # where scikit-learn is installed, the same interpreter imports it without the blocker
    if importlib.util.find_spec("sklearn") is not None:
        r = run([sys.executable, "-c", "import sklearn"], {**blocked_env, "PYTHONPATH": str(REPO)}, tmp_path)
        assert r.returncode == 0, r.stderr


def test_help_without_training_extras(blocked_env, tmp_path):
    entry = Path(sys.executable).parent / "scorer"
    commands = [[sys.executable, "-m", "scorer.cli", "--help"]]
    if entry.exists():  # the installed console script
        commands.append([str(entry), "--help"])
    for cmd in commands:
        r = run(cmd, blocked_env, tmp_path)
        assert r.returncode == 0, r.stderr
        assert "catalog" in r.stdout and "demo" in r.stdout, r.stdout


def test_scoring_every_head_without_training_extras(blocked_env, tmp_path):
    files = draw_covers(tmp_path / "covers", 3, seed=2000, size=256)
    rows = [{"id": str(i), "cover_url": f"covers/{file.name}"} for i, file in enumerate(files)]
    src = tmp_path / "catalog.csv"
    with open(src, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "cover_url"])
        w.writeheader()
        w.writerows(rows)

    model = Model()
    heads = model.head_names
    assert {"cnn-xgboost", "cnn-mlp", "cnn-knn", "ensemble"} <= set(heads)
    for head in heads:
        out = tmp_path / f"{head}.parquet"
        r = run([sys.executable, "-m", "scorer.cli", "catalog", str(src), "--out", str(out), "--head", head,
                 "--workers", "2"], blocked_env, tmp_path)
        assert r.returncode == 0, f"{head}: {r.stderr}"
        got = pq.read_table(out).to_pylist()
        assert [g["id"] for g in got] == [row["id"] for row in rows]
        for g in got:
            assert g["status"] == "ok", (head, g)
            assert g["head"] == head
            assert g["genre"] in model.genres
            assert sum(g[f"p_{x}"] for x in model.genres) == pytest.approx(1.0, abs=1e-4)


def test_a_missing_runtime_module_stops_the_run_instead_of_failing_rows(tmp_path):
    """An environment problem is not a property of a row: the run must fail loudly, write nothing."""
    site = tmp_path / "block-aiohttp"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.replace(repr(set(BLOCKED)), repr({"aiohttp"})))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "PYTHONNOUSERSITE": "1"}
    catalog = tmp_path / "http.csv"
    catalog.write_text("cover_url\nhttp://127.0.0.1:9/cover.jpg\n")
    out = tmp_path / "scored.parquet"
    r = run([sys.executable, "-m", "scorer.cli", "catalog", str(catalog), "--out", str(out)], env, tmp_path)
    assert r.returncode != 0
    assert "aiohttp is blocked" in r.stderr
    assert not out.exists()
