"""How long ``scorer train`` takes from labelled covers to a finished model, with a cold feature cache.

1,500 covers of 3 labels (500 each of covers-5genre's country, hip-hop and rock, the first 500 of each folder in
name order) through a labels CSV; the default network and heads (``scorer train DIR --out M`` without
``--finetune``); the cover, feature and hash caches in a fresh temporary folder. Prints the seconds of each
stage (reading and grouping, features, CV folds, pooled figures and calibration, final fit, writing), the
total, the cores this process may use and the load average before and after (other processes share the cores).

    python -m benchmarks.train_speed [--per-label 500] [--labels country,hiphop,rock] [--heads all]
                                     [--out benchmarks/results/train_speed]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

from .common import COVERS, REPO


def labels_csv(path: Path, labels: list[str], per_label: int) -> int:
    rows = []
    for label in labels:
        files = sorted((COVERS / label).glob("*.jpg"))[:per_label]
        if len(files) < per_label:
            raise SystemExit(f"{COVERS / label}: {len(files)} covers, the benchmark needs {per_label}")
        rows += [(str(p), label) for p in files]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre"])
        w.writerows(rows)
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-label", type=int, default=500)
    ap.add_argument("--labels", default="country,hiphop,rock")
    ap.add_argument("--heads", default=None, help="as scorer train --heads [default: the default heads]")
    ap.add_argument("--featurizer", default=None, help="as scorer train --featurizer [default: default]")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "train_speed")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        os.environ["SCORER_CACHE_DIR"] = str(Path(tmp) / "cache")  # cold: nothing featurized or hashed yet
        from scorer.api.training import _heads
        from scorer.featurize.cnn import default_threads
        from scorer.training.pipeline import train_dataset

        data = Path(tmp) / "labels.csv"
        n = labels_csv(data, args.labels.split(","), args.per_label)
        heads = _heads(args.heads, finetune=False)
        load_before = os.getloadavg()
        stages: dict[str, float] = {}
        t0 = time.perf_counter()
        manifest = train_dataset(data, Path(tmp) / "model", featurizer=args.featurizer, heads=heads,
                                 timings=stages, log=lambda m: print(m, flush=True))
        total = time.perf_counter() - t0
        load_after = os.getloadavg()
    out = {"covers": n, "labels": args.labels.split(","), "heads": list(heads),
           "network": manifest["featurizers"]["cnn"]["id"], "default_head": manifest["default_head"],
           # optimistic with the default network: it was fine-tuned on these very covers
           "default_head_cv_balanced_accuracy": round(
               manifest["cv"]["heads"][manifest["default_head"]]["balanced_accuracy"], 4),
           "stages_seconds": stages, "total_seconds": round(total, 1), "cores": default_threads(),
           "load_average_before": [round(v, 2) for v in load_before],
           "load_average_after": [round(v, 2) for v in load_after],
           "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(json.dumps(out, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(args.out.with_suffix(".json").read_text()) if args.out.with_suffix(".json").exists() else []
    args.out.with_suffix(".json").write_text(json.dumps([*runs, out], indent=1) + "\n")


if __name__ == "__main__":
    main()
