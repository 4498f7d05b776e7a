"""Build the shipped default model (``models/default``) from the shared 5-genre covers.

    python -m training.build_default [--data ../shared/data/covers-5genre]

The covers are read in place and never copied into the repository; only the trained heads
and the manifest (genres, featurizer, training-set hash, CV figures) are written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .pipeline import train_dataset

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "covers-5genre")
    ap.add_argument("--out", type=Path, default=REPO / "models" / "default")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    manifest = train_dataset(args.data, args.out, folds=args.folds, seed=0, name="covers-5genre",
                             featurizer=REPO / "models" / "featurizer" / "efficientnet-lite0.onnx",
                             log=lambda m: print(m, file=sys.stderr, flush=True), copy_featurizer=False)
    print(f"{args.out}: {manifest['version']}, default head {manifest['default_head']}")


if __name__ == "__main__":
    main()
