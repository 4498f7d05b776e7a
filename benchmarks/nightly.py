"""The nightly batch at scale: catalogs of 10k and 100k rows (covers from a loopback CDN process,
many rows sharing a cover), peak RSS per size, then a rerun with 1% of rows changed.

    python -m benchmarks.nightly --rows 10000 100000
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import REPO, SHARED
from .fetch_links import start_cdn


def write_catalog(path: Path, rows: int, covers: int, base: str, changed: set[int] = frozenset()) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "cover_url"])
        for i in range(rows):
            url = f"{base}/img/new-{i}.jpg" if i in changed else f"{base}/img/c{i % covers}.jpg"
            w.writerow([f"{i:07d}", f"Album {i}", url])


def scorer_catalog(src: Path, out: Path, extra: list[str]) -> dict:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "scorer.cli", "catalog", str(src), "--out", str(out), "--json",
                        "--allow-private-hosts", *extra], capture_output=True, text=True, cwd=REPO, check=False)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    keys = ("rows", "scored", "inferred", "rows_rescored", "rows_carried", "shards", "shards_skipped", "peak_rss_mb")
    return {"wall_s": round(time.perf_counter() - start, 1), **{k: summary[k] for k in keys}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--covers", type=int, default=2000, help="distinct cover URLs in the catalog")
    parser.add_argument("--changed", type=float, default=0.01, help="fraction of rows changed for the rerun")
    parser.add_argument("--cover-dir", type=Path, default=SHARED / "covers-5genre")
    args = parser.parse_args()
    proc, base = start_cdn(args.cover_dir, 0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cache = ["--no-cache"]
            for n in args.rows:
                src, out = Path(tmp) / f"catalog-{n}.csv", Path(tmp) / f"scored-{n}"
                write_catalog(src, n, args.covers, base)
                first = scorer_catalog(src, out, cache)
                print(json.dumps({"rows": n, "run": "first", **first}), flush=True)
                changed = set(random.Random(0).sample(range(n), int(n * args.changed)))
                write_catalog(src, n, args.covers, base, changed)
                second = scorer_catalog(src, out, cache)
                print(json.dumps({"rows": n, "run": f"rerun, {len(changed)} rows changed", **second}), flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
