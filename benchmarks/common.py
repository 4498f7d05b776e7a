"""Shared pieces of the benchmarks: repeated measurements and where the inputs live."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SCORER_SHARED_DATA", REPO.parent / "shared" / "data"))
COVERS = SHARED / "covers-5genre"
LINKS = SHARED / "bandcamp" / "dataset-links.tsv"


def spread(values: list[float], digits: int = 1) -> dict:
    """Median with min and max, and how many repetitions they summarise."""
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "reps": len(values)}


def repeat(fn: Callable[[], float], reps: int, warmup: int = 1) -> dict:
    """Run ``fn`` (which returns a rate) ``warmup`` times unrecorded, then ``reps`` times."""
    for _ in range(warmup):
        fn()
    return spread([fn() for _ in range(reps)])


def rate(n: int, fn: Callable[[], object]) -> float:
    """``n / seconds`` for one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def cover_files(n: int) -> list[Path]:
    """``n`` real covers, round-robin over the genres in a fixed order."""
    by_genre = [sorted(d.glob("*.jpg")) for d in sorted(COVERS.iterdir()) if d.is_dir()]
    out = [files[i] for i in range(max(map(len, by_genre))) for files in by_genre if i < len(files)]
    if len(out) < n:
        raise SystemExit(f"{COVERS}: {len(out)} covers, the benchmark needs {n}")
    return out[:n]


def in_subprocess(module: str, *args: str) -> dict:
    """Run ``python -m module args`` (fresh process: its own peak RSS) and parse its last JSON line."""
    r = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])
