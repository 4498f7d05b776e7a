"""Which network should ``scorer train`` fit its heads on without ``--finetune``: the frozen ImageNet
EfficientNet-Lite0, or the shipped model's fine-tuned one? Measured honestly: with networks that never saw
the covers they are judged on.

The shipped network was fine-tuned on every shared cover, so a CV of heads on its features over the shared
sets leaks. The fine-tuning cache keeps the networks of the shipped procedure's CV splits
(``~/.cache/scorer/finetune/<key>/checkpoint.pt``, same recipe: 160 px crops, 6 epochs, every layer); each
checkpoint names the covers it was trained on by their fingerprint, which tells the split. Each task below
takes covers one of those networks never saw (neither the covers nor their artists / near-duplicate
clusters), and runs the same grouped 5-fold CV ``scorer evaluate --group-by artist`` runs (every head kind on
the CNN features, their ensemble, the calibration; the colour-histogram heads are left out: they do not depend
on the network) on that network's features and on the ImageNet network's, same folds:

- ``5genre-country-hiphop``: covers-5genre's country and hip-hop (1,941), with the network of
  ``heldout:covers-5genre`` (trained on covers-spotify and covers-5genre's other genres: the nearest there is to
  "trained on covers-spotify only"; it learnt country and hip-hop from Spotify covers only).
- ``spotify-country-hiphop``: covers-spotify's country and hip-hop (322), with the network of
  ``cross:covers-5genre→covers-spotify`` (trained on covers-5genre and covers-spotify's other genres: the
  reverse direction).
- ``tjaarek-3``: the tjaarek collection's country, hip-hop and metal (538; a 3-label set like a user's), with
  the network of ``heldout:covers-spotify/tjaarek``.
- ``5genre-3-unseen-artists`` / ``5genre-5-unseen-artists``: covers-5genre's electronic, pop and rock (or all
  five genres), per CV fold of the shipped procedure: that fold's test covers with that fold's network (which
  learnt these genres from the same collection, other artists); the figures are the mean over the 5 folds.

No cached network was trained without a genre, so every task's labels are genres the network learnt (from
another collection, or from other artists): a user's own labels (like/skip, a genre outside the nine) are not
measured here. The shipped network itself is given for reference only: it has seen every one of these covers.

    python -m benchmarks.featurizer_choice [--tasks NAME,...] [--out benchmarks/results/featurizer_choice]

Features come from the feature cache when ``scorer evaluate --finetune`` computed them (the export is
deterministic: same checkpoint, same ONNX, same id); the checkpoints are exported to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import REPO, SHARED

SETS = ("covers-5genre", "covers-spotify")
IMAGENET = REPO / "models" / "featurizer" / "efficientnet-lite0.onnx"
SHIPPED = REPO / "models" / "default" / "featurizer" / "efficientnet-lite0-finetuned.onnx"
TASKS = ("5genre-country-hiphop", "spotify-country-hiphop", "tjaarek-3", "5genre-3-unseen-artists",
         "5genre-5-unseen-artists")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def split_networks(dataset, y: np.ndarray) -> dict[str, Path]:
    """The cached checkpoints of the shipped procedure's splits, by split name (the covers each was
    fine-tuned on, as :func:`scorer.training.pipeline.evaluate_finetuned` chose them, matched by fingerprint)."""
    import torch

    from scorer.fetch import default_cache_root
    from scorer.training.evaluate import cv_splits, heldout_splits
    from scorer.training.finetune import data_fingerprint
    from scorer.training.pipeline import BLEND_SHARE, _held_back

    groups = dataset.groups
    splits = cv_splits(y, 5, 0, groups) + heldout_splits(
        y, dataset.genres, [e.collection for e in dataset.examples], [e.source for e in dataset.examples], groups)
    by_fingerprint = {}
    for s in splits:
        fit = _held_back(s.train, y, BLEND_SHARE, sum(map(ord, s.name)), groups)
        by_fingerprint[data_fingerprint([dataset.examples[j] for j in fit], dataset.genres)] = s.name
    found = {}
    for ckpt in sorted((default_cache_root() / "finetune").glob("*/checkpoint.pt")):
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        name = by_fingerprint.get(state["data"])
        finished = state["epoch"] == state["recipe"]["epochs"] and state["recipe"].get("size") == 160
        if name and finished:
            found[name] = ckpt
    return found


def export(ckpt: Path, genres: list[str], out_dir: Path) -> Path:
    """A cached checkpoint as the ONNX featurizer ``scorer evaluate --finetune`` exported from it."""
    import torch

    from scorer.training.finetune import Finetuned, Recipe, build, export_finetuned

    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    model = build(state["recipe"]["arch"], len(genres))
    model.load_state_dict(state["model"])
    ft = Finetuned(model.eval(), list(genres), Recipe(**state["recipe"]), state["history"], "cpu")
    return export_finetuned(ft, out_dir, np.zeros((2, 224, 224, 3), np.uint8))


def task_rows(name: str, dataset, y: np.ndarray, fold_tests: list[np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """(network split, covers) pairs of a task: one pair, or one per CV fold."""
    ex = dataset.examples
    genre = np.array([e.genre for e in ex])
    source = np.array([e.source for e in ex])
    collection = np.array([e.collection for e in ex])

    def rows(mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask)

    two = np.isin(genre, ["country", "hiphop"])
    if name == "5genre-country-hiphop":
        return [("heldout:covers-5genre", rows((source == "covers-5genre") & two))]
    if name == "spotify-country-hiphop":
        return [("cross:covers-5genre→covers-spotify", rows((source == "covers-spotify") & two))]
    if name == "tjaarek-3":
        return [("heldout:covers-spotify/tjaarek", rows((collection == "covers-spotify/tjaarek")
                                                        & np.isin(genre, ["country", "hiphop", "metal"])))]
    five = sorted(set(genre[source == "covers-5genre"]))
    wanted = ["electronic", "pop", "rock"] if name == "5genre-3-unseen-artists" else five
    return [(f"fold{k + 1}", np.intersect1d(test, rows((source == "covers-5genre") & np.isin(genre, wanted))))
            for k, test in enumerate(fold_tests)]


def cv_figures(features: dict[str, np.ndarray], y: np.ndarray, groups: list[str]) -> dict:
    """Grouped 5-fold CV of every head, as ``scorer evaluate`` runs it on one input: per head the balanced
    accuracy and the out-of-fold top-1 ECE before and after calibration."""
    from scorer.training.evaluate import cross_validate

    labels = sorted(set(y.tolist()))
    yy = np.searchsorted(labels, y)
    t0 = time.perf_counter()
    cv = cross_validate(features, yy, [str(g) for g in labels], 5, 0, groups=groups, cross_source=False)
    cal = cv["calibration"]["heads"]
    return {"seconds": round(time.perf_counter() - t0, 1), "covers": int(len(y)),
            "heads": {n: {"balanced_accuracy": round(m["balanced_accuracy"], 4),
                          "ece_raw": cal[n]["ece_before"], "ece_calibrated": cal[n]["ece_after"]}
                      for n, m in cv["heads"].items()}}


def mean_figures(runs: list[dict]) -> dict:
    heads = runs[0]["heads"]
    return {"seconds": round(sum(r["seconds"] for r in runs), 1), "covers": sum(r["covers"] for r in runs),
            "folds_averaged": len(runs),
            "heads": {n: {k: round(float(np.mean([r["heads"][n][k] for r in runs])), 4) for k in heads[n]}
                      for n in heads}}


def speed(featurizers: dict[str, object], covers: list[str], threads: int = 2) -> dict:
    """Covers per second of each network on ``threads`` threads (decoded covers, batches of 16)."""
    from scorer.decode import decode_image
    from scorer.featurize import OnnxFeaturizer

    images = np.stack([decode_image(Path(p).read_bytes()) for p in covers])
    out = {}
    for name, f in featurizers.items():
        net = OnnxFeaturizer(f.path, threads=threads)
        net(images[:16])
        t0 = time.perf_counter()
        for b in range(0, len(images), 16):
            net(images[b:b + 16])
        out[name] = round(len(images) / (time.perf_counter() - t0), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "featurizer_choice")
    args = ap.parse_args()

    from scorer.featurize import OnnxFeaturizer
    from scorer.training.dataset import load_labelled
    from scorer.training.evaluate import stratified_folds
    from scorer.training.features import extract

    dataset = load_labelled([SHARED / s for s in SETS], None, "artist")
    y = np.array(dataset.labels)
    genres = np.array(dataset.genres)
    fold_tests = stratified_folds(y, 5, 0, dataset.groups)
    networks = split_networks(dataset, y)
    log(f"cached networks of the shipped procedure's splits: {sorted(networks)}")
    imagenet = OnnxFeaturizer(IMAGENET)
    shipped = OnnxFeaturizer(SHIPPED)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="featurizer-choice-") as tmp:
        exported: dict[str, OnnxFeaturizer] = {}
        for task in args.tasks.split(","):
            per: dict[str, list[dict]] = {"imagenet": [], "finetuned-held-out": [], "shipped-leaky": []}
            ids = []
            for split, rows in task_rows(task, dataset, y, fold_tests):
                if split not in networks:
                    raise SystemExit(f"{task}: no finished checkpoint of {split} in the fine-tuning cache")
                if split not in exported:
                    safe = split.replace("→", "-").replace(":", "-").replace("/", "_")
                    exported[split] = OnnxFeaturizer(export(networks[split], dataset.genres, Path(tmp) / safe))
                net = exported[split]
                ids.append(net.id)
                ex = [dataset.examples[i] for i in rows]
                groups = [dataset.groups[i] for i in rows]
                kinds = [("imagenet", imagenet), ("finetuned-held-out", net)]
                if not split.startswith("fold"):  # a reference only: not worth its time five times over
                    kinds.append(("shipped-leaky", shipped))
                for kind, f in kinds:
                    x = extract(ex, {"cnn": f}, label=f"{task} {kind}")["cnn"]
                    per[kind].append(cv_figures({"cnn": x}, genres[y[rows]], groups))
                    log(f"{task} {split} {kind}: " + ", ".join(
                        f"{n} {m['balanced_accuracy']:.3f}" for n, m in per[kind][-1]["heads"].items()))
            results[task] = {"networks": ids, "splits": [s for s, _ in task_rows(task, dataset, y, fold_tests)],
                             "genres": sorted(set(genres[y[np.concatenate([r for _, r in task_rows(
                                 task, dataset, y, fold_tests)])]].tolist())),
                             **{k: (v[0] if len(v) == 1 else mean_figures(v)) for k, v in per.items() if v}}
        sample = [e.path for e in dataset.examples[::60][:96]]
        results_speed = speed({"imagenet": imagenet, "finetuned": shipped}, sample)
    out = {"tasks": results, "speed_covers_per_second_2_threads": results_speed,
           "imagenet_id": imagenet.id, "shipped_id": shipped.id}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    args.out.with_suffix(".md").write_text(markdown(out))
    print(markdown(out))


def markdown(out: dict) -> str:
    lines = ["# Heads on the ImageNet network or on the fine-tuned one (`python -m benchmarks.featurizer_choice`)",
             "", "Grouped 5-fold CV (artist + near-duplicate cluster) of every head on covers the fine-tuned "
             "network never saw; balanced accuracy, out-of-fold top-1 ECE raw → calibrated. The shipped network "
             "has seen every cover: for reference only.", ""]
    for task, r in out["tasks"].items():
        lines += [f"## {task}: {', '.join(r['genres'])} ({r['imagenet']['covers']} covers; network of "
                  f"{', '.join(r['splits'])})", "",
                  "| head | ImageNet | fine-tuned, held out | shipped (leaky) | ECE ImageNet | ECE fine-tuned |",
                  "|---|---|---|---|---|---|"]
        for head, m in r["imagenet"]["heads"].items():
            ft = r["finetuned-held-out"]["heads"][head]
            sh = f"{r['shipped-leaky']['heads'][head]['balanced_accuracy']:.3f}" if "shipped-leaky" in r else "-"
            lines.append(f"| {head} | {m['balanced_accuracy']:.3f} | {ft['balanced_accuracy']:.3f} | "
                         f"{sh} | {m['ece_raw']:.3f} → {m['ece_calibrated']:.3f} | "
                         f"{ft['ece_raw']:.3f} → {ft['ece_calibrated']:.3f} |")
        lines += ["", f"CV seconds: ImageNet {r['imagenet']['seconds']}, fine-tuned "
                  f"{r['finetuned-held-out']['seconds']}", ""]
    lines += [f"Network speed, covers/s on 2 threads: {out['speed_covers_per_second_2_threads']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
