"""Build the shipped default model (``models/default``) from the shared cover sets: the Discogs
covers of ``covers-5genre`` and the Spotify covers of ``covers-spotify``, 9 genres, grouped by
artist and near-duplicate cluster.

    python -m scorer.training.build_default                                    # frozen featurizer, with CV
    python -m scorer.training.build_default --finetune --cv finetune-cv.json   # ship a fine-tuned CNN if it wins

``--data``, ``--out``, ``--folds`` and ``--heads`` (frozen featurizer only) make a quick build on a few covers
into a folder of one's own (what tests/test_build_default.py runs); the shipped model takes the defaults.

The covers are read in place and never copied into the repository; only the trained heads
and the manifest (genres, aliases, featurizer, training-set hash, groups, CV figures per input
and across inputs, calibration) are written.

``--finetune`` compares ``scorer evaluate --finetune --json`` figures (``--cv``, or computed here)
with the shipped model's (frozen, or an earlier fine-tuning) when that model was trained on the
same covers, and else with a frozen-featurizer CV of these covers computed here; it ships the
fine-tuned network only if its best head wins. Its heads are then fitted on all covers; the
manifest takes the fine-tuning CV figures (the only honest ones: the shipped network has seen
every cover), their calibration, the blend weights averaged over the folds, and flip
test-time augmentation on by default if it raised the best head's figure by ``TTA_MIN_GAIN`` and did not
lower its mean over the held-out collections.

The bar: the default head (chosen by held-out figure, :func:`scorer.training.evaluate.best_head`) must keep an
in-collection CV of ``CV_FLOOR`` or more; against a shipped model with held-out figures on the same covers, its
held-out mean must be higher; against one without, its best in-collection figure must come within
``HEAD_CV_TOLERANCE`` of the shipped one's (the held-out figures it brings are what it is for).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from scorer.manifest import write_manifest
from scorer.training.dataset import load_labelled
from scorer.training.evaluate import BLEND, HEAD_CV_TOLERANCE, best_head
from scorer.training.heads import HEAD_KINDS
from scorer.training.manifests import CV_FIELDS, CV_SECTIONS, calibration_manifest, variant_cv
from scorer.training.networks import ALL_HEADS
from scorer.training.pipeline import (
    choose_precision,
    evaluate_dataset,
    evaluate_finetuned,
    train_dataset,
    train_finetuned,
)

REPO = Path(__file__).resolve().parents[2]  # the repository: scorer/training/build_default.py
SETS = ("covers-5genre", "covers-spotify")
NAME = "covers-9genre"
#: flip TTA runs the CNN twice per cover; like a featurizer more than 1.5x as slow, it is on by
#: default only if it buys at least this much balanced accuracy (else ``--tta flip`` offers it)
TTA_MIN_GAIN = 0.03
#: the in-collection balanced accuracy a shipped default head keeps at least
CV_FLOOR = 0.44


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mean_weights(per_fold: list[dict[str, float]]) -> dict[str, float]:
    names = sorted({n for w in per_fold for n in w})
    total = {n: sum(w.get(n, 0.0) for w in per_fold) for n in names}
    norm = sum(total.values())
    return {n: round(v / norm, 4) for n, v in sorted(total.items(), key=lambda kv: -kv[1]) if v > 0}


def finetuned_manifest(manifest: dict, cv: dict) -> dict:
    """The shipped manifest with the fine-tuning CV figures, the blend and the TTA choice."""
    best = best_head(cv)
    flip = cv.get("variants", {}).get("flip", {}).get("balanced_accuracy_change", {}).get(best, 0.0)
    # and it must not cost on covers from elsewhere
    flip_heldout = (cv.get("heldout_summary") or {}).get(best, {}).get("variants_change", {}).get("flip", 0.0)
    cnn = dict(manifest["featurizers"]["cnn"])
    if flip >= TTA_MIN_GAIN and flip_heldout >= 0:
        cnn["tta"] = "flip"
    if "int8" in cnn.get("variants", {}) and "int8" in cv.get("variants", {}):
        # each fold's network was quantized the way the shipped one is: CV says what int8 costs
        cnn["variants"] = {**cnn["variants"], "int8": {**cnn["variants"]["int8"], "cv": variant_cv(cv, "int8")}}
        cnn["default_precision"] = choose_precision(cv)
    return {
        **manifest,
        "featurizers": {**manifest["featurizers"], "cnn": cnn},
        BLEND: {"weights": mean_weights(cv["blend_weights"]),
                "chosen_on": f"{cv['blend_share']:.0%} of each CV fold's training covers, held back from "
                             f"fine-tuning and the heads; weights averaged over the folds"},
        "default_head": best,
        "cv": {"folds": cv["folds"], "seed": cv["seed"], "stratified": True, "grouped": cv.get("grouped", False),
               "finetuned_in_each_fold": True, "fold_seconds": cv["fold_seconds"],
               "missing_genres": cv.get("missing_genres"),
               "heads": {n: {k: m[k] for k in CV_FIELDS if k in m} for n, m in cv["heads"].items()},
               **{k: cv[k] for k in CV_SECTIONS if cv.get(k)},
               "flip_tta_change": copy.deepcopy(cv.get("variants", {}).get("flip", {}).get("balanced_accuracy_change")),
               "int8_change": copy.deepcopy(cv.get("variants", {}).get("int8", {}).get("balanced_accuracy_change"))},
        "calibration": calibration_manifest(cv) if cv.get("calibration") else manifest.get("calibration"),
        "familiarity": {**(manifest.get("familiarity") or {}), **(cv.get("familiarity") or {})},
    }


def heads_arg(text: str) -> tuple[str, ...]:
    """``--heads``: head kinds (``knn``) or featurizer-kind pairs (``cnn-knn``), comma-separated."""
    names = tuple(dict.fromkeys(h.strip() for h in text.split(",") if h.strip()))
    unknown = [h for h in names if h not in HEAD_KINDS and h not in ALL_HEADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{','.join(unknown) or repr(text)}: use some of "
                                         f"{', '.join((*HEAD_KINDS, *ALL_HEADS))}")
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, nargs="+", default=[REPO.parent / "shared" / "data" / s for s in SETS])
    ap.add_argument("--group-by", default="artist", help="column of the inputs' labels.csv grouping the folds")
    ap.add_argument("--name", default=NAME)
    ap.add_argument("--out", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--heads", type=heads_arg, default=HEAD_KINDS,
                    help="without --finetune: the heads fitted, comma-separated kinds (knn: on both featurizers) or "
                         "featurizer-kind pairs (cnn-logreg) [default: every kind on both featurizers]")
    ap.add_argument("--finetune", action="store_true", help="ship a fine-tuned CNN if it wins under CV")
    ap.add_argument("--cv", type=Path, help="--finetune: figures of `scorer evaluate --finetune --json`")
    ap.add_argument("--epochs", type=int, help="--finetune without --cv: epochs [default: the recipe's]")
    ap.add_argument("--frozen-cv", type=Path,
                    help="--finetune: the frozen featurizer's `scorer evaluate --json` on these covers, when the bar "
                         "needs it: read if the file exists, else computed and written there")
    args = ap.parse_args()
    if not args.finetune:
        manifest = train_dataset(args.data, args.out, folds=args.folds, seed=0, name=args.name,
                                 featurizer=REPO / "models" / "featurizer" / "efficientnet-lite0.onnx",
                                 log=log, copy_featurizer=False, group_by=args.group_by, heads=args.heads)
        print(f"{args.out}: {manifest['version']}, default head {manifest['default_head']}")
        return

    from scorer.training.finetune import Recipe

    if args.cv:  # ship what was measured: the recipe comes with the figures
        cv = json.loads(args.cv.read_text())
        recipe = Recipe(**cv["finetuning"])
    else:
        recipe = Recipe() if args.epochs is None else Recipe(epochs=args.epochs)
        cv = evaluate_finetuned(args.data, recipe, args.folds, log=log, group_by=args.group_by)
    # the floor needs no bar: a fine-tuning under it is turned down before the shipped covers are read
    why = under_floor(cv)
    bar = None if why else the_bar(args.out, args.data, args.group_by, args.folds, cv, args.frozen_cv)
    verdict: dict[str, Any] = beats(cv, bar) if bar else {"ship": False, "why": why}
    log(verdict["why"])
    if not verdict["ship"]:
        print(f"{verdict['why']}: {args.out} unchanged")
        return
    assert bar is not None  # only a fine-tuning that beats the bar ships
    manifest = train_finetuned(args.data, args.out, recipe, name=args.name, log=log, group_by=args.group_by)
    manifest = finetuned_manifest(manifest, cv)
    manifest["cv"]["beat_frozen"] = {"head": bar["frozen"]["head"],
                                     "balanced_accuracy": bar["frozen"]["balanced_accuracy"],
                                     "featurizer": "models/featurizer (ImageNet weights, not fine-tuned)"}
    manifest = write_manifest(args.out / "manifest.json", manifest)
    print(f"{args.out}: {manifest['version']} (fine-tuned), default head {manifest['default_head']}")


def under_floor(cv: dict) -> str | None:
    """Why a fine-tuning's default head is under :data:`CV_FLOOR`, or None."""
    head = best_head(cv)
    figure = cv["heads"][head]["balanced_accuracy"]
    return f"default head {head}: in-collection CV {figure:.3f} < {CV_FLOOR}" if figure < CV_FLOOR else None


def beats(cv: dict, bar: dict) -> dict:
    """Whether a fine-tuning's figures clear ``bar`` (:func:`the_bar`), and why."""
    head = best_head(cv)
    figure = cv["heads"][head]["balanced_accuracy"]
    top = max(m["balanced_accuracy"] for m in cv["heads"].values())
    if why := under_floor(cv):
        return {"ship": False, "why": why}
    held = (cv.get("heldout_summary") or {}).get(head, {}).get("balanced_accuracy")
    if bar.get("heldout") is not None and held is not None:
        ok = held > bar["heldout"]
        return {"ship": ok, "why": f"held-out mean {held:.3f} ({head}) against {bar['heldout']:.3f} "
                                   f"({bar['what']}); in-collection CV {figure:.3f}"}
    ok = top >= bar["balanced_accuracy"] - HEAD_CV_TOLERANCE
    return {"ship": ok, "why": f"best in-collection CV {top:.3f} against {bar['balanced_accuracy']:.3f} "
                               f"({bar['what']}, within {HEAD_CV_TOLERANCE}); default head {head} {figure:.3f}"
                               + (f", held-out mean {held:.3f}" if held is not None else "")}


def the_bar(out: Path, data: list[Path], group_by: str | None, folds: int, cv: dict,
            frozen_file: Path | None = None) -> dict:
    """What a fine-tuning must beat: the shipped model's best CV figure when it was trained on these
    covers (frozen, or an earlier fine-tuning, which beat a frozen figure), else the frozen
    featurizer's, cross-validated here on the same covers and groups."""
    shipped = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").is_file() else None
    fingerprint = cv.get("dataset", {}).get("sha256") or load_labelled(data, group_by=group_by).fingerprint()
    if shipped and shipped.get("cv") and shipped["training_set"].get("sha256") == fingerprint:
        shipped_cv = shipped["cv"]
        best = best_head(shipped_cv)
        figure = shipped_cv["heads"][best]["balanced_accuracy"]
        frozen = shipped_cv.get("beat_frozen") or {"head": best, "balanced_accuracy": figure}
        held = (shipped_cv.get("heldout_summary") or {}).get(best, {}).get("balanced_accuracy")
        return {"balanced_accuracy": figure, "heldout": held, "frozen": frozen,
                "what": "the shipped model, same covers"}
    if frozen_file and frozen_file.is_file():
        frozen_cv = json.loads(frozen_file.read_text())
        if frozen_cv.get("dataset", {}).get("sha256") != fingerprint:
            raise SystemExit(f"--frozen-cv {frozen_file}: measured on other covers")
    else:
        log("the shipped model was trained on other covers: cross-validating the frozen featurizer on these")
        frozen_cv = evaluate_dataset(data, folds=folds, log=log, group_by=group_by,
                                     featurizer=REPO / "models" / "featurizer" / "efficientnet-lite0.onnx")
        if frozen_file:
            frozen_file.write_text(json.dumps(frozen_cv) + "\n")
    best = best_head(frozen_cv)
    figure = frozen_cv["heads"][best]["balanced_accuracy"]
    return {"balanced_accuracy": figure, "heldout": None, "frozen": {"head": best, "balanced_accuracy": figure},
            "what": "the frozen featurizer on these covers"}


if __name__ == "__main__":
    main()
