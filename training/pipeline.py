"""``scorer evaluate`` and ``scorer train``: labelled covers → CV figures → a model directory."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import scorer
from scorer.featurize import ColourFeaturizer, OnnxFeaturizer
from scorer.fetch import FetchOptions
from scorer.model import shipped_featurizer

from .dataset import Dataset, load_labelled
from .evaluate import FEATURIZER_KINDS, best_head, cross_validate
from .features import extract
from .heads import HEAD_KINDS, fit_head

Log = Callable[[str], None] | None


def _featurize(data: Path, featurizer: Path | None, log: Log,
               fetch: FetchOptions | None = None) -> tuple[Dataset, dict[str, np.ndarray], OnnxFeaturizer]:
    dataset = load_labelled(data, fetch)
    if log:
        log(f"{len(dataset.examples)} covers in {len(dataset.genres)} genres {dataset.counts()}; "
            f"dropped {dataset.dropped_duplicates} duplicate(s), {dataset.dropped_conflicts} cover(s) filed "
            f"under several genres")
        if dataset.unfetched:
            log(f"left out {sum(dataset.unfetched.values())} cover(s) that could not be fetched: "
                f"{dict(dataset.unfetched)}")
    if len(dataset.genres) < 2:
        raise ValueError(f"{data}: need at least two genres, found {dataset.genres}")
    featurizer = Path(featurizer) if featurizer else shipped_featurizer()
    if not featurizer.is_file():
        raise ValueError(f"--featurizer {featurizer}: no such ONNX file")
    cnn = OnnxFeaturizer(featurizer)
    features = extract(dataset.examples, {"cnn": cnn, "colour": ColourFeaturizer()})
    return dataset, features, cnn


def evaluate_dataset(data: Path, folds: int = 5, seed: int = 0, featurizer: Path | None = None,
                     log: Log = None, fetch: FetchOptions | None = None) -> dict:
    dataset, features, cnn = _featurize(data, featurizer, log, fetch)
    cv = cross_validate(features, np.array(dataset.labels), dataset.genres, folds, seed, log=log)
    cv["featurizers"] = {"cnn": cnn.id, "colour": ColourFeaturizer.id}
    cv["best_head"] = best_head(cv)
    cv["dataset"] = {"source": str(data), "images": len(dataset.examples), "sha256": dataset.fingerprint(),
                     "per_genre": dataset.counts(), "unfetched": dict(dataset.unfetched)}
    return cv


def train_dataset(data: Path, out: Path, folds: int = 5, seed: int = 0, name: str = "custom",
                  featurizer: Path | None = None, log: Log = None, copy_featurizer: bool = True,
                  fetch: FetchOptions | None = None) -> dict:
    """Fit every head on all covers and write ``out`` atomically (built beside it, then renamed).

    ``copy_featurizer=False`` references the featurizer by a path relative to ``out`` instead of
    copying it in (the shipped default shares ``models/featurizer/``).
    """
    dataset, features, cnn = _featurize(data, featurizer, log, fetch)
    y = np.array(dataset.labels)
    cv = cross_validate(features, y, dataset.genres, folds, seed, log=log) if folds else None

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        (staging / "heads").mkdir()
        heads = {}
        for fkind in FEATURIZER_KINDS:
            for hkind in HEAD_KINDS:
                head_name = f"{fkind}-{hkind}"
                if log:
                    log(f"fitting {head_name} on {len(y)} covers")
                fitted = fit_head(hkind, fkind, features[fkind], y, len(dataset.genres), seed)
                rel = f"heads/{head_name}{fitted.suffix}"
                fitted.save(staging / rel)
                heads[head_name] = {"featurizer": fkind, "kind": hkind, "file": rel, "params": fitted.params}
        if copy_featurizer:
            (staging / "featurizer").mkdir()
            for f in (cnn.path, cnn.path.with_suffix(".json")):
                shutil.copy2(f, staging / "featurizer" / f.name)
            cnn_file = f"featurizer/{cnn.path.name}"
        else:
            cnn_file = os.path.relpath(cnn.path, out.resolve())
        created = datetime.now(timezone.utc)
        manifest = {
            "name": name,
            "version": f"{name}-{created:%Y%m%d}-{dataset.fingerprint()[:8]}",
            "created_at": created.isoformat(timespec="seconds"),
            "scorer_version": scorer.__version__,
            "genres": dataset.genres,
            "featurizers": {
                "cnn": {"id": cnn.id, "file": cnn_file, "arch": cnn.meta.get("arch"),
                        "preprocessing": cnn.meta.get("preprocessing")},
                "colour": {"id": ColourFeaturizer.id, "bins": [8, 8, 8], "space": "HSV (OpenCV)",
                           "normalisation": "L1"},
            },
            "heads": heads,
            "ensemble": list(heads),
            "default_head": best_head(cv) if cv else "ensemble",
            "training_set": {"source": Path(data).name, "images": len(dataset.examples),
                             "sha256": dataset.fingerprint(), "per_genre": dataset.counts(),
                             "dropped_duplicates": dataset.dropped_duplicates,
                             "dropped_conflicts": dataset.dropped_conflicts,
                             "unfetched": dict(dataset.unfetched)},
            "cv": _cv_summary(cv) if cv else None,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it owner-only; a model is meant to be shared
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _cv_summary(cv: dict) -> dict:
    keep = ("accuracy", "balanced_accuracy", "recall", "balanced_accuracy_per_fold")
    return {"folds": cv["folds"], "seed": cv["seed"], "stratified": True,
            "heads": {n: {k: m[k] for k in keep} for n, m in cv["heads"].items()}}
