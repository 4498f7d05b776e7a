"""Tries at carrying the genre signal across collections, measured on held-out collections and in-collection CV.

Every try is a way of turning a split's training covers into genre probabilities for its test covers. Each is run
on the 5 grouped CV folds of the shared sets (``covers-5genre`` and ``covers-spotify``, grouped by artist and
near-duplicate cluster) and on every held-out split that ``scorer evaluate`` forms from them (a collection's
covers of the genres another collection holds, left out of training with their groups), and reported in one
table: in-collection CV, per collection, on 150 px thumbnails of the CV test covers, on each held-out split, the
ECE and the precision of what ``--min-prob`` keeps after the shipped kind of calibration (familiarity-dependent,
fitted on out-of-fold and held-out predictions, cross-fitted), and recall per genre.

    python -m benchmarks.transfer [--size 160] [--tries frozen-logreg,tuned-blend,...]
                                  [--out benchmarks/results/transfer] [--per-genre N]

The fine-tuned tries fine-tune one network per split with the recipe of ``scorer evaluate --finetune --train-size
SIZE`` (same splits, seeds and held-back rows), through the same cache: a split fine-tuned once (by this or by
``scorer evaluate --finetune --keep-checkpoints``) is resumed from its checkpoint, not trained again. About 20
minutes per split on 2 cores the first time; features are cached by network.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .common import REPO, SHARED
from .featurizers import first_per_genre

SETS = ("covers-5genre", "covers-spotify")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Context:
    """The labelled covers, their splits, and features: frozen once, fine-tuned per split (lazily)."""

    dataset: object
    y: np.ndarray
    folds: list
    heldout: list
    size: int
    frozen: dict[str, np.ndarray] = field(default_factory=dict)
    tuned: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    networks: dict[str, object] = field(default_factory=dict)
    fit_rows: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def genres(self) -> list[str]:
        return self.dataset.genres

    def fit(self, split) -> np.ndarray:
        from scorer.training.pipeline import BLEND_SHARE, _held_back

        if split.name not in self.fit_rows:
            self.fit_rows[split.name] = _held_back(split.train, self.y, BLEND_SHARE, sum(map(ord, split.name)),
                                                   self.dataset.groups)
        return self.fit_rows[split.name]

    def frozen_features(self) -> dict[str, np.ndarray]:
        if not self.frozen:
            from scorer.featurize import OnnxFeaturizer
            from scorer.training.features import Degraded, extract

            cnn = OnnxFeaturizer(REPO / "models" / "featurizer" / "efficientnet-lite0.onnx")
            self.frozen = extract(self.dataset.examples, {"plain": cnn, "thumb": Degraded(cnn)},
                                  label="frozen features")
        return self.frozen

    def tuned_features(self, split) -> dict[str, np.ndarray]:
        if split.name not in self.tuned:
            import tempfile

            from scorer.training.features import Degraded, extract
            from scorer.training.finetune import Recipe
            from scorer.training.pipeline import _finetune

            examples = [self.dataset.examples[i] for i in self.fit(split)]
            with tempfile.TemporaryDirectory() as tmp:
                cnn, _, network = _finetune(examples, self.genres, Recipe(size=self.size), Path(tmp), log,
                                            quantize=False, keep_checkpoints=True)
                self.tuned[split.name] = extract(self.dataset.examples, {"plain": cnn, "thumb": Degraded(cnn)},
                                                 label=f"features ({split.name})")
            self.networks[split.name] = network
        return self.tuned[split.name]


def _balanced(y: np.ndarray, proba: np.ndarray) -> float:
    pred = proba.argmax(axis=1)
    return float(np.mean([(pred[y == g] == g).mean() for g in np.unique(y)]))


def _heads(kinds: tuple[str, ...], x: np.ndarray, fit: np.ndarray, y: np.ndarray, n: int,
           aug: np.ndarray | None = None):
    from scorer.training.heads import fit_head

    xf, yf = x[fit], y[fit]
    if aug is not None:  # the same covers as thumbnails too
        xf, yf = np.concatenate([xf, aug[fit]]), np.concatenate([yf, yf])
    return {k: fit_head(k, "cnn", xf, yf, n) for k in kinds}


def _blend(fitted: dict, x_of: dict, ctx: Context, split) -> dict[str, float]:
    from scorer.training.evaluate import select_blend

    held = np.setdiff1d(split.train, ctx.fit(split))
    return select_blend({n: f.predict_proba(x_of[n][held]) for n, f in fitted.items()}, ctx.y[held])


def run_try(name: str, ctx: Context, split) -> dict[str, np.ndarray]:
    """Test-row probabilities of try ``name`` on ``split``: ``plain`` and ``thumb`` (the same covers as 150 px
    thumbnails), and the features familiarity is measured in (``space``)."""
    y, n, fit, test = ctx.y, len(ctx.genres), ctx.fit(split), split.test
    frozen = ctx.frozen_features()
    if name.startswith("frozen"):
        aug = frozen["thumb"] if name.endswith("+thumbs") else None
        kind = name.split("-")[1].split("+", maxsplit=1)[0]
        head = _heads((kind,), frozen["plain"], fit, y, n, aug)[kind]
        return {"plain": head.predict_proba(frozen["plain"][test]), "thumb": head.predict_proba(frozen["thumb"][test]),
                "space": frozen["plain"]}
    tuned = ctx.tuned_features(split)
    network = ctx.networks[split.name]
    aug = tuned["thumb"] if name.endswith("+thumbs") else None
    base = name.removesuffix("+thumbs")
    if base == "tuned-network":
        return {"plain": network.predict_proba(tuned["plain"][test]),
                "thumb": network.predict_proba(tuned["thumb"][test]), "space": tuned["plain"]}
    if base in ("tuned-logreg", "tuned-knn", "tuned-mlp"):
        kind = base.split("-")[1]
        head = _heads((kind,), tuned["plain"], fit, y, n, aug)[kind]
        return {"plain": head.predict_proba(tuned["plain"][test]), "thumb": head.predict_proba(tuned["thumb"][test]),
                "space": tuned["plain"]}
    if base == "concat-logreg":
        x = np.hstack([tuned["plain"], frozen["plain"]])
        xt = np.hstack([tuned["thumb"], frozen["thumb"]])
        head = _heads(("logreg",), x, fit, y, n, xt if aug is not None else None)["logreg"]
        return {"plain": head.predict_proba(x[test]), "thumb": head.predict_proba(xt[test]), "space": tuned["plain"]}
    if base in ("tuned-blend", "tuned+frozen-blend"):
        fitted = {f"tuned-{k}": h for k, h in _heads(("logreg", "knn", "mlp"), tuned["plain"], fit, y, n, aug).items()}
        x_of = {k: tuned["plain"] for k in fitted}
        xt_of = {k: tuned["thumb"] for k in fitted}
        fitted["tuned-network"], x_of["tuned-network"], xt_of["tuned-network"] = network, tuned["plain"], tuned["thumb"]
        if base == "tuned+frozen-blend":
            for k, h in _heads(("logreg", "knn"), frozen["plain"], fit, y, n,
                               frozen["thumb"] if aug is not None else None).items():
                fitted[f"frozen-{k}"], x_of[f"frozen-{k}"], xt_of[f"frozen-{k}"] = h, frozen["plain"], frozen["thumb"]
        weights = _blend(fitted, x_of, ctx, split)

        def mix(xs: dict) -> np.ndarray:
            return sum(w * fitted[m].predict_proba(xs[m][test]) for m, w in weights.items())

        return {"plain": mix(x_of), "thumb": mix(xt_of), "space": tuned["plain"]}
    raise KeyError(name)


TRIES = ("frozen-logreg", "frozen-logreg+thumbs", "tuned-network", "tuned-logreg", "tuned-knn", "tuned-mlp",
         "tuned-blend", "tuned-logreg+thumbs", "tuned-blend+thumbs", "concat-logreg", "tuned+frozen-blend",
         "tuned+frozen-blend+thumbs")


def figures(name: str, ctx: Context) -> dict:
    """Run one try on every split; its in-collection, thumbnail and held-out figures, calibrated as shipped."""
    from scorer.heads.calibration import expected_calibration_error
    from scorer.heads.familiarity import Familiarity
    from scorer.training.calibration import Rows, calibrate, precision_at

    y, genres = ctx.y, ctx.genres
    collections = np.array([e.collection for e in ctx.dataset.examples])
    oof, oof_thumb = np.zeros((len(y), len(genres))), np.zeros((len(y), len(genres)))
    familiarity, fold_of = np.zeros(len(y)), np.zeros(len(y), dtype=int)
    held = []
    for k, split in enumerate([*ctx.folds, *ctx.heldout]):
        t0 = time.perf_counter()
        got = run_try(name, ctx, split)
        fit = ctx.fit(split)
        scale = Familiarity.fit(got["space"][fit], [ctx.dataset.groups[i] for i in fit])
        fam = scale(got["space"][split.test])
        if split.is_fold:
            oof[split.test], oof_thumb[split.test] = got["plain"], got["thumb"]
            familiarity[split.test], fold_of[split.test] = fam, k
        else:
            held.append(Rows(split.name, got["plain"], y[split.test], split.test, fam))
        log(f"{name} {split.name}: {_balanced(y[split.test], got['plain']):.3f} ({time.perf_counter() - t0:.0f}s)")
    cal = calibrate(Rows("out-of-fold", oof, y, np.arange(len(y)), familiarity, fold_of), held)
    out = {"cv": round(_balanced(y, oof), 4), "cv_thumbnails": round(_balanced(y, oof_thumb), 4),
           "cv_recall": {g: round(float((oof.argmax(1)[y == i] == i).mean()), 4) for i, g in enumerate(genres)},
           "by_collection": {}, "heldout": {}, "ece_out_of_fold": cal["ece_after"],
           "calibration": {k: cal[k] for k in ("temperature", "slope", "mix", "used")}}
    for c in sorted(set(collections)):
        rows = collections == c
        out["by_collection"][c] = {"balanced_accuracy": round(_balanced(y[rows], oof[rows]), 4),
                                   "thumbnails": round(_balanced(y[rows], oof_thumb[rows]), 4)}
    for h in held:
        after = cal["after_heldout"][h.name]
        out["heldout"][h.name] = {"balanced_accuracy": round(_balanced(h.y, h.proba), 4),
                                  "recall": {genres[g]: round(float((h.proba.argmax(1)[h.y == g] == g).mean()), 4)
                                             for g in np.unique(h.y)},
                                  "ece": round(expected_calibration_error(after, h.y), 4),
                                  "precision_at": precision_at(after, h.y),
                                  "familiarity_median": round(float(np.median(h.familiarity)), 4)}
    out["heldout_mean"] = round(float(np.mean([h["balanced_accuracy"] for h in out["heldout"].values()])), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", default=",".join(TRIES), help=f"comma-separated, of {', '.join(TRIES)}")
    ap.add_argument("--size", type=int, default=160, help="pixels of the fine-tuning crops")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "transfer")
    ap.add_argument("--per-genre", type=int,
                    help="only the first N covers of each genre of each set (a quick check; held-out splits need 20)")
    args = ap.parse_args()
    names = [t.strip() for t in args.tries.split(",") if t.strip()]
    unknown = [n for n in names if n not in TRIES]
    if unknown:
        raise SystemExit(f"unknown tries: {', '.join(unknown)}; known: {', '.join(TRIES)}")

    from scorer.training.dataset import load_labelled
    from scorer.training.evaluate import cv_splits, heldout_splits

    with tempfile.TemporaryDirectory() as tmp:
        data = [SHARED / s if args.per_genre is None
                else first_per_genre(SHARED / s, args.per_genre, Path(tmp) / f"{s}.csv") for s in SETS]
        dataset = load_labelled(data, group_by="artist")
    y = np.array(dataset.labels)
    ctx = Context(dataset, y, cv_splits(y, 5, 0, dataset.groups),
                  heldout_splits(y, dataset.genres, [e.collection for e in dataset.examples],
                                 [e.source for e in dataset.examples], dataset.groups), args.size)
    previous = json.loads(args.out.with_suffix(".json").read_text()) if args.out.with_suffix(".json").exists() else {}
    results = dict(previous.get("tries") or {})
    for name in names:
        results[name] = figures(name, ctx)
        log(f"{name}: {json.dumps({k: results[name][k] for k in ('cv', 'cv_thumbnails', 'heldout_mean')})}")
    out = {"data": list(SETS), "group_by": "artist + near-duplicate clusters", "fine_tuning_size": args.size,
           "splits": {"folds": 5, "heldout": [s.name for s in ctx.heldout]}, "tries": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(out) + "\n")
    print(json.dumps(out))


def markdown(out: dict) -> str:
    splits = out["splits"]["heldout"]
    short = {s: s.replace("heldout:", "").replace("covers-", "") for s in splits}
    lines = ["Balanced accuracy. *CV*: 5-fold grouped, pooled out of fold; *thumbs*: the CV test covers as 150 px "
             "thumbnails; held-out splits: trained without that collection's covers of the genres another has. "
             "ECE and *right at ≥0.7* (the share right of what `--min-prob 0.7` keeps, worst held-out split) after "
             "the shipped kind of calibration, cross-fitted.", "",
             "| try | CV | CV Discogs | CV Spotify | thumbs | " + " | ".join(short[s] for s in splits)
             + " | held-out mean | ECE OOF | worst held-out ECE | right at ≥0.7 (worst) |",
             "|---|---|---|---|---|" + "---|" * len(splits) + "---|---|---|---|"]
    for name, r in out["tries"].items():
        bc = r["by_collection"]
        held = r["heldout"]
        prec = [h["precision_at"]["0.7"]["precision"] for h in held.values() if h["precision_at"]["0.7"]["precision"]
                is not None]
        lines.append(f"| `{name}` | {r['cv']:.3f} | {bc.get('covers-5genre', {}).get('balanced_accuracy', 0):.3f} | "
                     f"{bc.get('covers-spotify/tjaarek', {}).get('balanced_accuracy', 0):.3f} | "
                     f"{r['cv_thumbnails']:.3f} | " + " | ".join(f"{held[s]['balanced_accuracy']:.3f}" for s in splits)
                     + f" | **{r['heldout_mean']:.3f}** | {r['ece_out_of_fold']:.3f} | "
                     f"{max(h['ece'] for h in held.values()):.3f} | "
                     + (f"{min(prec):.2f}" if prec else "none kept") + " |")
    genres = list(next(iter(out["tries"].values()))["cv_recall"])
    lines += ["", "Recall per genre, CV (out of fold):", "", "| try | " + " | ".join(genres) + " |",
              "|---|" + "---|" * len(genres)]
    for name, r in out["tries"].items():
        lines.append(f"| `{name}` | " + " | ".join(f"{r['cv_recall'][g]:.2f}" for g in genres) + " |")
    lines += ["", "Recall per genre on the held-out splits:", "", "| try | "
              + " | ".join(f"{short[s]}: {g}" for s in splits for g in next(iter(out["tries"].values()))["heldout"][s]
                           ["recall"]) + " |"]
    first = next(iter(out["tries"].values()))["heldout"]
    lines.append("|---|" + "---|" * sum(len(first[s]["recall"]) for s in splits))
    for name, r in out["tries"].items():
        recalls = [v for s in splits for v in r["heldout"][s]["recall"].values()]
        lines.append(f"| `{name}` | " + " | ".join(f"{v:.2f}" for v in recalls) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
