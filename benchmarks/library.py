"""``scorer.score`` from Python against ``scorer catalog`` on the same real covers: what the library's way in
(a DataFrame of paths, a list of bytes, a list of PIL images) costs next to the command line. One JSON line each.

    python -m benchmarks.library [--per-genre 120]

The library figures are the call alone, with the model loaded once beforehand (as a notebook does); the
command line's is the whole process (start-up and model load included), so it is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import COVERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-genre", type=int, default=120)
    args = parser.parse_args()
    import pandas as pd
    from PIL import Image

    import scorer

    covers = [p for g in sorted(COVERS.iterdir()) if g.is_dir() for p in sorted(g.glob("*.jpg"))[:args.per_genre]]
    frame = pd.DataFrame({"cover_url": [str(p) for p in covers]})
    model = scorer.load_model()
    scorer.score(frame.head(32), model=model)  # the session's first runs are slower
    for label, given in [("paths in a DataFrame", frame), ("bytes in a list", [p.read_bytes() for p in covers]),
                         ("PIL images in a list", [Image.open(p) for p in covers])]:
        start = time.perf_counter()
        out = scorer.score(given, model=model)
        seconds = time.perf_counter() - start
        print(json.dumps({"case": f"scorer.score: {label}", "rows": len(out), "ok": int((out["status"] == "ok").sum()),
                          "seconds": round(seconds, 2), "rows_per_second": round(len(out) / seconds, 1)}))
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "covers.csv"
        frame.to_csv(catalog, index=False)
        scorer_cli = Path(sys.executable).with_name("scorer")
        start = time.perf_counter()
        done = subprocess.run([str(scorer_cli), "catalog", str(catalog), "--out", str(Path(tmp) / "o.parquet"),
                               "--json"], check=True, capture_output=True, text=True, env=dict(os.environ))
        seconds = time.perf_counter() - start
        summary = json.loads(done.stdout)
        print(json.dumps({"case": "scorer catalog (whole process)", "rows": summary["rows"], "ok": summary["scored"],
                          "seconds": round(seconds, 2), "rows_per_second": round(summary["rows"] / seconds, 1)}))


if __name__ == "__main__":
    main()
