"""Which pretrained featurizer pays: EfficientNet-Lite0, -Lite1 and -Lite2 (the weight packages
that ship here), frozen, at 224 px and at each network's own input size (240, 260), compared
by leak-free grouped 5-fold CV on the shared cover sets and by cost per cover.

    python -m benchmarks.featurizers [--out benchmarks/results/featurizers]
    python -m benchmarks.featurizers --per-genre 6 --candidates lite0@224 --folds 2 --out /tmp/f   # a quick check

Each network is exported to ONNX (uint8 NHWC in, normalisation in the graph, as shipped) into
``benchmarks/.envs/featurizers/``; covers are decoded at its input size. Heads: logistic
regression (balanced, on standardised features: the reference baseline of the 9-genre goal) at
each strength of :data:`CS`, the best one reported for every network alike (chosen on the same
folds, so equally optimistic for all), and the shipped kNN. Cost: featurizer-only img/s at batch
16 on this machine's cores (median of 3 alternating repetitions over 256 covers; run it on an
idle machine), and the ratio to Lite0 at 224. The rule the model follows: a featurizer more than
1.5x as slow must buy at least +0.03 balanced accuracy.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .common import REPO, SHARED

ENVS = REPO / "benchmarks" / ".envs" / "featurizers"
CANDIDATES = [("lite0", 224), ("lite1", 224), ("lite1", 240), ("lite2", 224), ("lite2", 260)]
SETS = ("covers-5genre", "covers-spotify")
SLOWER, MIN_GAIN = 1.5, 0.03
#: logistic-regression strengths tried for every network (the shipped head uses 0.0003 on Lite0)
CS = (0.0001, 0.0003, 0.001, 0.003)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def export(arch: str, size: int) -> Path:
    from scorer.training.export_featurizer import load_torch_model, onnx_export, wrap

    path = ENVS / f"efficientnet-{arch}-{size}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        model, _ = load_torch_model(arch)
        onnx_export(wrap(model), path, size=size)
    return path


def decode_all(paths: list[str], size: int) -> np.ndarray:
    from scorer.decode import decode_image
    from scorer.featurize.cnn import default_threads

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def one(i: int) -> None:
        out[i] = decode_image(Path(paths[i]).read_bytes(), size=size)

    with ThreadPoolExecutor(max_workers=default_threads()) as pool:
        list(pool.map(one, range(len(paths))))
    return out


def features(onnx: Path, paths: list[str], size: int, fingerprint: str) -> np.ndarray:
    from scorer.featurize import OnnxFeaturizer
    from scorer.training.dataset import sha256_file

    cache = ENVS / f"{onnx.stem}-{sha256_file(onnx)[:8]}-{fingerprint[:8]}.npy"
    if cache.exists():
        return np.load(cache)
    f = OnnxFeaturizer(onnx)
    chunks = []
    for start in range(0, len(paths), 256):
        images = decode_all(paths[start:start + 256], size)
        chunks += [f(images[i:i + 16]) for i in range(0, len(images), 16)]
    x = np.concatenate(chunks).astype(np.float32)
    np.save(cache, x)
    return x


def speed(onnx_files: dict[str, Path], sizes: dict[str, int], paths: list[str], reps: int = 3) -> dict[str, float]:
    """img/s per candidate, repetitions alternating between candidates (the machine is noisy)."""
    from scorer.featurize import OnnxFeaturizer

    loaded = {k: (OnnxFeaturizer(p), decode_all(paths[:256], sizes[k])) for k, p in onnx_files.items()}
    rates: dict[str, list[float]] = {k: [] for k in loaded}
    for f, images in loaded.values():  # warm-up
        f(images[:16])
    for _ in range(reps):
        for k, (f, images) in loaded.items():
            t0 = time.perf_counter()
            for i in range(0, len(images), 16):
                f(images[i:i + 16])
            rates[k].append(len(images) / (time.perf_counter() - t0))
    return {k: round(statistics.median(v), 1) for k, v in rates.items()}


def logreg_cv(x: np.ndarray, y: np.ndarray, splits, n_classes: int, c: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    oof = np.zeros((len(y), n_classes), dtype=np.float32)
    for s in splits:
        scaler = StandardScaler().fit(x[s.train])
        clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
        clf.fit(scaler.transform(x[s.train]), y[s.train])
        oof[np.ix_(s.test, clf.classes_)] = clf.predict_proba(scaler.transform(x[s.test]))
    return oof


def knn_cv(x: np.ndarray, y: np.ndarray, splits, n_classes: int) -> np.ndarray:
    from scorer.training.heads import fit_head

    oof = np.zeros((len(y), n_classes), dtype=np.float32)
    for s in splits:
        oof[s.test] = fit_head("knn", "cnn", x[s.train], y[s.train], n_classes).predict_proba(x[s.test])
    return oof


def first_per_genre(folder: Path, n: int, out: Path) -> Path:
    """A labels CSV (absolute paths) of the first ``n`` covers of each genre of ``folder``'s labels.csv."""
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    taken: dict[str, int] = {}
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            if taken.setdefault(r["genre"], 0) < n:
                taken[r["genre"]] += 1
                w.writerow({**r, "path": str(folder / r["path"])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "featurizers")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--candidates", default=",".join(f"{a}@{s}" for a, s in CANDIDATES),
                    help="networks and input sizes, comma-separated; lite0@224 (the base) first")
    ap.add_argument("--per-genre", type=int, help="only the first N covers of each genre of each set (a quick check)")
    args = ap.parse_args()
    known = {f"{a}@{s}": (a, s) for a, s in CANDIDATES}
    chosen = [c.strip() for c in args.candidates.split(",") if c.strip()]
    if not chosen or chosen[0] != "lite0@224" or any(c not in known for c in chosen):
        ap.error(f"--candidates {args.candidates}: lite0@224 first, then some of {', '.join(known)}")
    with tempfile.TemporaryDirectory() as tmp:
        data = [SHARED / s if args.per_genre is None
                else first_per_genre(SHARED / s, args.per_genre, Path(tmp) / f"{s}.csv") for s in SETS]
        run(data, {c: known[c] for c in chosen}, args.folds, args.out)


def run(data: list[Path], names: dict[str, tuple[str, int]], folds: int, out: Path) -> None:
    from scorer.training.dataset import load_labelled
    from scorer.training.evaluate import cv_splits, metrics

    dataset = load_labelled(data, group_by="artist")
    y = np.array(dataset.labels)
    genres = dataset.genres
    splits = cv_splits(y, folds, 0, dataset.groups)
    paths = [e.path for e in dataset.examples]
    log(f"{len(y)} covers, {len(genres)} genres, {len(set(dataset.groups))} groups, {folds} folds")
    files = {k: export(a, s) for k, (a, s) in names.items()}
    rates = speed(files, {k: s for k, (_, s) in names.items()}, paths)
    log(f"img/s: {rates}")
    rows = []
    for k, (arch, size) in names.items():
        t0 = time.perf_counter()
        x = features(files[k], paths, size, dataset.fingerprint())
        log(f"{k}: features in {time.perf_counter() - t0:.0f}s")
        row = {"featurizer": f"EfficientNet-{arch.title()}", "arch": arch, "input": size, "img_per_s": rates[k],
               "cost_vs_lite0": round(rates["lite0@224"] / rates[k], 2)}
        def summary(m: dict) -> dict:
            return {"balanced_accuracy": round(m["balanced_accuracy"], 4), "accuracy": round(m["accuracy"], 4),
                    "recall": {g: round(v, 3) for g, v in m["recall"].items()}}

        by_c = {c: metrics(y, logreg_cv(x, y, splits, len(genres), c).argmax(1), genres) for c in CS}
        best_c = max(by_c, key=lambda c: by_c[c]["balanced_accuracy"])
        row["logreg"] = {**summary(by_c[best_c]), "C": best_c,
                         "by_C": {str(c): round(m["balanced_accuracy"], 4) for c, m in by_c.items()}}
        row["knn"] = summary(metrics(y, knn_cv(x, y, splits, len(genres)).argmax(1), genres))
        log(f"{k}: logreg {row['logreg']['by_C']}, knn {row['knn']['balanced_accuracy']:.3f}")
        rows.append(row)
    base = rows[0]["logreg"]["balanced_accuracy"]
    for row in rows:
        gain = row["logreg"]["balanced_accuracy"] - base
        row["gain_vs_lite0"] = round(gain, 4)
        row["pays"] = bool(row["cost_vs_lite0"] <= SLOWER or gain >= MIN_GAIN)
    result = {"data": list(SETS), "covers": int(len(y)), "groups": len(set(dataset.groups)),
              "folds": folds, "group_by": "artist + near-duplicate clusters", "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = ["| featurizer | input px | img/s (batch 16) | cost vs Lite0 | logreg balanced acc. (C) | change | kNN "
          "balanced acc. | pays (≤1.5x, or ≥ +0.03) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['featurizer']} | {r['input']} | {r['img_per_s']} | {r['cost_vs_lite0']}x | "
                  f"{r['logreg']['balanced_accuracy']:.3f} ({r['logreg']['C']:g}) | {r['gain_vs_lite0']:+.3f} | "
                  f"{r['knn']['balanced_accuracy']:.3f} | {'yes' if r['pays'] else 'no'} |")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
