"""Fine-tuning recipes against the store confound: each variant fine-tunes on fold 1 of the
grouped 5-fold CV and on both cross-source splits of the shared cover sets (country and hiphop:
train without one store's covers of them, test on those), and reports balanced accuracy and
the cross-source gap per split.

    python -m benchmarks.recipes [--variants store,basic] [--splits fold1,cross] [--out benchmarks/results/recipes]

About 30 minutes per variant on 2 cores (fold 1 alone: about 12). The splits are those of
``scorer evaluate ... --finetune --folds 5 --group-by artist`` (same seed, groups and held-back
blend rows) and are saved in its resume folder, so the full CV with the winning recipe reuses them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from .common import REPO, SHARED

SETS = ("covers-5genre", "covers-spotify")
VARIANTS = {
    "store": {"augment": "store"},
    "basic": {"augment": "basic"},
    "unweighted": {"class_weighting": "none"},
    "freeze0": {"freeze_blocks": 0},
    "epochs6": {"epochs": 6},
    "freeze0-epochs6": {"freeze_blocks": 0, "epochs": 6},
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="store,basic", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "recipes")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--splits", default="fold1,cross", help="fold1 and/or cross (both cross-source splits)")
    args = ap.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")

    from scorer.training.dataset import load_labelled
    from scorer.training.evaluate import cross_source_splits
    from scorer.training.finetune import Recipe
    from scorer.training.pipeline import evaluate_finetuned

    data = [SHARED / s for s in SETS]
    dataset = load_labelled(data, group_by="artist")
    cross = [s.name for s in cross_source_splits(dataset.labels, dataset.genres,
                                                 [e.source for e in dataset.examples], dataset.groups)]
    wanted = {w.strip() for w in args.splits.split(",")}
    splits = ({"fold1"} if "fold1" in wanted else set()) | (set(cross) if "cross" in wanted else set())
    results = {}
    for name in names:
        recipe = replace(Recipe(epochs=args.epochs), **VARIANTS[name])
        log(f"{name}: {recipe}")
        t0 = time.perf_counter()
        cv = evaluate_finetuned(data, recipe, folds=5, group_by="artist", log=log, only=splits)
        results[name] = {"recipe": cv["finetuning"], "seconds": round(time.perf_counter() - t0, 1),
                         "splits": cv["splits"]}
    out = {"data": list(SETS), "group_by": "artist + near-duplicate clusters", "splits": sorted(splits),
           "variants": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(out) + "\n")
    print(json.dumps(out))


def markdown(out: dict) -> str:
    heads = ("cnn-network", "cnn-knn", "cnn-xgboost", "cnn-mlp", "cnn-logreg", "blend")
    lines = ["Balanced accuracy on each split's test covers (cross-source: the held-out store's country and hiphop "
             "covers, so over those two genres).", "",
             "| recipe | split | " + " | ".join(f"`{h}`" for h in heads) + " | best |",
             "|---|---|" + "---|" * (len(heads) + 1)]
    for name, r in out["variants"].items():
        for split, s in sorted(r["splits"].items()):
            best = max(s["heads"], key=lambda n: s["heads"][n]["balanced_accuracy"])
            lines.append(f"| {name} | {split} | " + " | ".join(
                f"{s['heads'][h]['balanced_accuracy']:.3f}" if h in s["heads"] else "" for h in heads)
                + f" | `{best}` {s['heads'][best]['balanced_accuracy']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
