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
#: int8 becomes a model's default precision only if no head loses more balanced accuracy than this
INT8_TOLERANCE = 0.01


def int8_beside(fp32: Path) -> Path | None:
    """``x-int8.onnx`` next to ``x.onnx`` (what ``training.quantize`` writes), if there is one."""
    path = fp32.with_name(f"{fp32.stem}-int8.onnx")
    return path if path.is_file() else None


def _featurize(data: Path, featurizer: Path | None, log: Log,
               fetch: FetchOptions | None = None
               ) -> tuple[Dataset, dict[str, np.ndarray], OnnxFeaturizer, dict[str, OnnxFeaturizer]]:
    """Features of every labelled cover, plus the cnn features of each other precision shipped beside
    the featurizer (under ``features["cnn:int8"]``)."""
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
    int8 = int8_beside(featurizer)
    others = {"int8": OnnxFeaturizer(int8)} if int8 else {}
    features = extract(dataset.examples, {"cnn": cnn, "colour": ColourFeaturizer(),
                                          **{f"cnn:{k}": f for k, f in others.items()}})
    return dataset, features, cnn, others


def _cross_validate(features: dict[str, np.ndarray], dataset: Dataset, folds: int, seed: int, log: Log) -> dict:
    """CV of the fp32 heads, which also score each other precision's features of the test folds."""
    base = {k: v for k, v in features.items() if ":" not in k}
    variants = {k.split(":")[1]: {"cnn": v} for k, v in features.items() if k.startswith("cnn:")}
    cv = cross_validate(base, np.array(dataset.labels), dataset.genres, folds, seed, log=log, variants=variants)
    for v in cv.get("variants", {}).values():
        v["balanced_accuracy_change"] = {n: round(m["balanced_accuracy"] - cv["heads"][n]["balanced_accuracy"], 4)
                                         for n, m in v["heads"].items()}
    return cv


def choose_precision(cv: dict | None) -> str:
    """int8 when no head's balanced accuracy drops by more than :data:`INT8_TOLERANCE` with it."""
    change = ((cv or {}).get("variants") or {}).get("int8", {}).get("balanced_accuracy_change")
    return "int8" if change and min(change.values()) >= -INT8_TOLERANCE else "fp32"


def evaluate_dataset(data: Path, folds: int = 5, seed: int = 0, featurizer: Path | None = None,
                     log: Log = None, fetch: FetchOptions | None = None) -> dict:
    dataset, features, cnn, others = _featurize(data, featurizer, log, fetch)
    cv = _cross_validate(features, dataset, folds, seed, log)
    cv["featurizers"] = {"cnn": cnn.id, "colour": ColourFeaturizer.id, **{f"cnn:{k}": f.id for k, f in others.items()}}
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
    dataset, features, cnn, others = _featurize(data, featurizer, log, fetch)
    y = np.array(dataset.labels)
    cv = _cross_validate(features, dataset, folds, seed, log) if folds else None

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
            for f in (cnn, *others.values()):
                for path in (f.path, f.path.with_suffix(".json")):
                    shutil.copy2(path, staging / "featurizer" / path.name)

        def cnn_file(f: OnnxFeaturizer) -> str:
            return f"featurizer/{f.path.name}" if copy_featurizer else os.path.relpath(f.path, out.resolve())

        created = datetime.now(timezone.utc)
        manifest = {
            "name": name,
            "version": f"{name}-{created:%Y%m%d}-{dataset.fingerprint()[:8]}",
            "created_at": created.isoformat(timespec="seconds"),
            "scorer_version": scorer.__version__,
            "genres": dataset.genres,
            "featurizers": {
                "cnn": {"id": cnn.id, "file": cnn_file(cnn), "arch": cnn.meta.get("arch"),
                        "preprocessing": cnn.meta.get("preprocessing"),
                        "default_precision": choose_precision(cv) if others else "fp32",
                        "variants": {k: _variant(f, cnn_file(f), cv, k) for k, f in others.items()}},
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


def _variant(f: OnnxFeaturizer, file: str, cv: dict | None, name: str) -> dict:
    """A model's other precision: its file, how it was made, and what it changes under CV."""
    spec = {"id": f.id, "file": file, "quantization": f.meta.get("quantization"),
            "quantization_check": f.meta.get("quantization_check")}
    if cv and name in cv.get("variants", {}):
        v = cv["variants"][name]
        spec["cv"] = {n: {"balanced_accuracy": round(m["balanced_accuracy"], 4),
                          "change": v["balanced_accuracy_change"][n]} for n, m in v["heads"].items()}
    return spec


def _cv_summary(cv: dict) -> dict:
    keep = ("accuracy", "balanced_accuracy", "recall", "balanced_accuracy_per_fold")
    return {"folds": cv["folds"], "seed": cv["seed"], "stratified": True,
            "heads": {n: {k: m[k] for k in keep} for n, m in cv["heads"].items()}}
