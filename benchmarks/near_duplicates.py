"""Where ``scorer similar`` says "the same artwork": the cosine similarity of the shipped network's features for
near-duplicate covers against every other pair, on the shared sets (``covers-5genre`` and ``covers-spotify``).

    python -m benchmarks.near_duplicates [--out benchmarks/results/near_duplicates]

Near-duplicates are the clusters ``scorer/training/groups.py`` builds (pHash and dHash close; union-find, so a
chain is one cluster): every pair inside a cluster is a near-duplicate pair. Every other pair of the 6,021 covers
is measured too (exactly, not sampled), and apart from them the pairs of one artist (covers-spotify's
``artist``) that are not near-duplicates: the look-alike series a threshold should not take for copies. Last, a
re-compressed, resized copy of every 20th cover against its original (60% at JPEG quality 60, as
``tests/test_similar.py``; and 40% at quality 40). For each candidate threshold: recall (near-duplicate pairs at
or above it), precision (of all pairs at or above it, the share that are near-duplicate pairs), and how many
same-artist and other pairs reach it. The pHash clusters are the reference, so a pair above the threshold that
they miss counts against precision; the most similar of those pairs are listed for a look.

Features are the shipped model's network (fp32, its test-time augmentation), computed through the training
feature cache (the covers' features are cached by the featurizer's id; a first run featurizes 6,021 covers, a few
minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from .common import REPO, SHARED

SETS = ("covers-5genre", "covers-spotify")
THRESHOLDS = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999)
#: the re-encoded copies: (scale, JPEG quality)
COPIES = ((0.6, 60), (0.4, 40))
#: pHash distance (of 64 bits) of the pairs that are the same artwork beyond doubt (the clusters join pairs up to 14)
CLOSE = 2
CLOSE_PAIRS = f"close pairs (pHash distance <= {CLOSE})"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def clusters(hashes: np.ndarray) -> np.ndarray:
    """A cluster id per cover: near-duplicate pairs (``groups.near_duplicate_pairs``) joined by union-find."""
    from scorer.training.groups import near_duplicate_pairs

    parent = list(range(len(hashes)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in near_duplicate_pairs(hashes):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(len(hashes))])


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float16).astype(np.float32)  # as the index stores them
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def copies(paths: list[str], model, scale: float, quality: int) -> np.ndarray:
    """Features of each cover re-saved at ``scale`` of its size and JPEG ``quality``."""
    from PIL import Image

    from scorer.decode import decode_image

    images = []
    for p in paths:
        with Image.open(p) as im:
            rgb = im.convert("RGB")
            small = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                               Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        small.save(buf, format="JPEG", quality=quality)
        images.append(decode_image(buf.getvalue()))
    stack = np.stack(images)
    return np.concatenate([model.cnn(stack[i:i + 16]) for i in range(0, len(stack), 16)])


def quantiles(values: np.ndarray) -> dict:
    return {str(q): round(float(np.quantile(values, q)), 3) for q in QUANTILES} if len(values) else {}


def share(values: np.ndarray, t: float) -> float | None:
    return round(float((values >= t).mean()), 3) if len(values) else None


def within(ranks: np.ndarray, n: int) -> float:
    return round(float((ranks <= n).mean()), 3)


def measure(limit: int | None = None) -> dict:
    from scorer.model import Model
    from scorer.training.dataset import load_labelled
    from scorer.training.features import extract
    from scorer.training.groups import perceptual_hashes

    dataset = load_labelled([SHARED / s for s in SETS], group_by="artist", near_duplicates=False)
    examples = dataset.examples[::max(1, len(dataset.examples) // limit)] if limit else dataset.examples
    paths = [e.path for e in examples]
    model = Model()
    log(f"{len(examples)} covers; features of {model.network_key}")
    x = unit(extract(examples, {"cnn": model.cnn})["cnn"])
    hashes = perceptual_hashes(paths, [e.sha256 for e in examples])
    cluster = clusters(hashes)
    phash = hashes[:, 0]
    artist = np.array([" ".join((e.group or "").casefold().split()) for e in examples])
    sims = x @ x.T
    upper = np.triu(np.ones(sims.shape, dtype=bool), 1)
    same_cluster = (cluster[:, None] == cluster[None, :]) & upper
    same_artist = (artist[:, None] == artist[None, :]) & (artist[:, None] != "") & upper & ~same_cluster
    other = upper & ~same_cluster & ~same_artist
    close = np.argwhere(np.bitwise_count(phash[:, None] ^ phash[None, :]) <= CLOSE)
    close = close[close[:, 0] < close[:, 1]]
    kinds = {"near-duplicate pairs": sims[same_cluster], CLOSE_PAIRS: sims[close[:, 0], close[:, 1]],
             "same-artist pairs (not near-duplicates)": sims[same_artist], "other pairs": sims[other]}
    sample = np.arange(len(paths))[::20]
    copy_sims, copy_ranks = {}, {}
    for scale, quality in COPIES:
        name = f"{round(scale * 100)}% size, JPEG q{quality}"
        to_all = unit(copies([paths[i] for i in sample], model, scale, quality)) @ x.T
        own = to_all[np.arange(len(sample)), sample]  # from the same product: a rounding is no rank
        copy_sims[name] = own
        above = to_all > own[:, None]
        # the original's rank among all the covers when the copy is the query, and its rank when its own
        # near-duplicates (other editions of the artwork) ahead of it do not count
        ranks = 1 + above.sum(axis=1)
        artwork = 1 + (above & (cluster[None, :] != cluster[sample][:, None])).sum(axis=1)
        copy_ranks[name] = {"first": within(ranks, 1), "top_3": within(ranks, 3), "top_10": within(ranks, 10),
                            "first_but_for_its_near_duplicates": within(artwork, 1)}
    log("pairs measured")
    all_pairs = sims[upper]
    rows = []
    for t in THRESHOLDS:
        dup_at = int((kinds["near-duplicate pairs"] >= t).sum())
        at = int((all_pairs >= t).sum())
        rows.append({"threshold": t, "recall": share(kinds["near-duplicate pairs"], t),
                     "recall_close": share(kinds[CLOSE_PAIRS], t),
                     "precision": round(dup_at / at, 3) if at else None, "pairs_at_or_above": at,
                     "same_artist_at_or_above": int((kinds["same-artist pairs (not near-duplicates)"] >= t).sum()),
                     "other_at_or_above": int((kinds["other pairs"] >= t).sum()),
                     **{f"copies {k}": share(v, t) for k, v in copy_sims.items()}})
    missed = np.argwhere((sims >= THRESHOLDS[len(THRESHOLDS) // 2]) & upper & ~same_cluster)
    missed = missed[np.argsort(-sims[missed[:, 0], missed[:, 1]])][:15]
    return {
        "covers": len(examples), "network": list(model.network_key), "model_version": model.version,
        "clusters": int(len(set(cluster[np.bincount(cluster)[cluster] > 1]))),
        "pairs": {k: int(len(v)) for k, v in kinds.items()},
        "quantiles": {**{k: quantiles(v) for k, v in kinds.items()},
                      **{f"copies {k}": quantiles(v) for k, v in copy_sims.items()}},
        "copies": {k: int(len(v)) for k, v in copy_sims.items()},
        "copies_original_ranked": copy_ranks,
        "thresholds": rows,
        "most_similar_pairs_the_clusters_miss": [
            {"similarity": round(float(sims[i, j]), 3), "a": str(Path(paths[i]).relative_to(SHARED)),
             "b": str(Path(paths[j]).relative_to(SHARED)), "same_artist": bool(artist[i] and artist[i] == artist[j])}
            for i, j in missed.tolist()],
    }


def markdown(result: dict) -> str:
    copy_keys = list(result["copies"])
    lines = [f"# Near-duplicates by cosine similarity ({result['covers']} covers of covers-5genre and covers-spotify; "
             f"network {result['network'][0]}, TTA {result['network'][1]})", "",
             f"{result['clusters']} pHash/dHash clusters; pairs: "
             + ", ".join(f"{k} {v:,}" for k, v in result["pairs"].items())
             + "; re-encoded copies: " + ", ".join(f"{k} {v}" for k, v in result["copies"].items()), "",
             "| similarity >= | recall (near-duplicate pairs) | recall (close pairs) | precision (all pairs) | "
             "pairs at or above | same-artist pairs | other pairs | "
             + " | ".join(f"copies found: {k}" for k in copy_keys) + " |",
             "|---|---|---|---|---|---|---|" + "---|" * len(copy_keys)]
    for r in result["thresholds"]:
        lines.append(f"| {r['threshold']} | {_cell(r['recall'])} | {_cell(r['recall_close'])} | "
                     f"{_cell(r['precision'])} | {r['pairs_at_or_above']:,} | {r['same_artist_at_or_above']:,} | "
                     f"{r['other_at_or_above']:,} | " + " | ".join(_cell(r[f"copies {k}"]) for k in copy_keys) + " |")
    lines += ["", f"A re-encoded copy as the query, all {result['covers']} covers as the index: where its original "
              f"ranks", "",
              "| copy | first | first but for near-duplicates of it | in the top 3 | in the top 10 |",
              "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['first']:.3f} | {v['first_but_for_its_near_duplicates']:.3f} | {v['top_3']:.3f} | "
              f"{v['top_10']:.3f} |"
              for k, v in result["copies_original_ranked"].items()]
    lines += ["", "Quantiles of the similarity:", "", "| pairs | " + " | ".join(str(q) for q in QUANTILES) + " |",
              "|---|" + "---|" * len(QUANTILES)]
    for kind, q in result["quantiles"].items():
        lines.append(f"| {kind} | " + " | ".join(_cell(q.get(str(x))) for x in QUANTILES) + " |")
    lines += ["", "The most similar pairs the pHash clusters do not join:", "", "| similarity | a | b | same artist |",
              "|---|---|---|---|"]
    for p in result["most_similar_pairs_the_clusters_miss"]:
        lines.append(f"| {p['similarity']:.3f} | {p['a']} | {p['b']} | {'yes' if p['same_artist'] else ''} |")
    return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "near_duplicates",
                        help="Writes OUT.json and OUT.md.")
    parser.add_argument("--limit", type=int, help="About this many covers, evenly spread (a quick check).")
    args = parser.parse_args()
    result = measure(args.limit)
    table = markdown(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
