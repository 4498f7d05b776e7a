"""What a second model (``--also``) and the ``embedding`` column cost: the same real covers scored by the shipped
model alone, with a companion that shares its network, with one that runs its own, and with embeddings. One JSON
line per case, then the Parquet sizes with and without embeddings.

    python -m benchmarks.also [--per-genre 100] [--reps 3]

The companion is the shipped model under another name and head (``cnn-logreg``): a model trained on the
shipped network looks like that to the scorer; with its network id changed, it runs its own copy of the
network, as a model on another network would. The model is loaded once per case, as a notebook does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import cover_files, spread


def _companion(root: Path, name: str, own_network: bool) -> Path:
    from scorer.model import default_model_dir

    out = root / name
    shutil.copytree(default_model_dir(), out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["name"], manifest["default_head"] = name, "cnn-logreg"
    if own_network:
        cnn = manifest["featurizers"]["cnn"]
        cnn["id"] = "another-network"
        for variant in cnn["variants"].values():
            variant["id"] = "another-network"
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-genre", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    import pyarrow.parquet as pq

    import scorer

    covers = [str(p) for p in cover_files(args.per_genre * 5)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = {"alone": {}, "also, shared network": {"also": _companion(root, "shared", False)},
                 "also, own network": {"also": _companion(root, "own", True)}, "embeddings": {"embeddings": True}}
        model = scorer.load_model()
        scorer.score(covers[:32], model=model)  # the first run of a session is slower
        for case, kwargs in cases.items():
            rates = []
            for _ in range(args.reps):
                start = time.perf_counter()
                out = scorer.score(covers, model=model, cache=False, **kwargs)
                rates.append(len(out) / (time.perf_counter() - start))
            print(json.dumps({"case": case, "covers": len(covers), "covers_per_second": spread(rates)}))
        sizes = {}
        catalog = root / "covers.csv"
        catalog.write_text("cover_url\n" + "\n".join(covers) + "\n")
        for case, embeddings in (("without embeddings", False), ("with embeddings", True)):
            path = root / f"{embeddings}.parquet"
            scorer.score_catalog(catalog, path, model=model, embeddings=embeddings)
            assert ("embedding" in pq.read_schema(path).names) == embeddings
            sizes[case] = round(path.stat().st_size / len(covers), 1)
        print(json.dumps({"case": "scorer catalog: Parquet bytes per row", **sizes}))


if __name__ == "__main__":
    main()
