"""Writing a trained model directory: every head fitted on all covers, the familiarity scale, the network
(copied in, or referenced) and the manifest, built beside ``out`` and renamed into place."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from scorer.featurize import ColourFeaturizer, OnnxFeaturizer
from scorer.files import publish_dir
from scorer.heads.familiarity import Familiarity
from scorer.manifest import write_manifest
from scorer.training.dataset import Dataset
from scorer.training.evaluate import FEATURIZER_KINDS, best_head, head_pairs
from scorer.training.genres import aliases_for
from scorer.training.heads import HEAD_KINDS, Fitted, fit_head
from scorer.training.manifests import (
    FAMILIARITY_FILE,
    _cv_summary,
    _variant,
    calibration_manifest,
    familiarity_manifest,
)
from scorer.version import __version__

Log = Callable[[str], None] | None


def write_model(out: Path, dataset: Dataset, features: dict[str, np.ndarray], cv: dict | None, *, name: str,
                seed: int, cnn: OnnxFeaturizer, others: dict[str, OnnxFeaturizer], cnn_entry: dict,
                copy_featurizer: bool = True, extra_heads: dict[str, Fitted] | None = None,
                default_head: str | None = None, log: Log = None, timings: dict[str, float] | None = None,
                heads: tuple[str, ...] = HEAD_KINDS) -> dict:
    """Fit every head on all covers and write ``out`` atomically; returns the manifest written.

    ``cnn_entry`` is what the manifest says of the network besides its id, file and variants (its default
    precision, where it comes from); a key set to ``None`` there is left out. ``heads``: kinds or featurizer-kind pairs
    (:func:`scorer.training.evaluate.head_pairs`). ``timings`` gets the seconds of the final fit and of the
    writing."""
    y = np.array(dataset.labels)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    t0 = time.perf_counter()
    try:
        (staging / "heads").mkdir()
        specs = {}
        for fkind, hkind in head_pairs(heads, [k for k in FEATURIZER_KINDS if k in features]):
            head_name = f"{fkind}-{hkind}"
            if log:
                log(f"fitting {head_name} on {len(y)} covers")
            fitted = fit_head(hkind, fkind, features[fkind], y, len(dataset.genres), seed)
            rel = f"heads/{head_name}{fitted.suffix}"
            fitted.save(staging / rel)
            specs[head_name] = {"featurizer": fkind, "kind": hkind, "file": rel, "params": fitted.params}
        for head_name, fitted in (extra_heads or {}).items():
            rel = f"heads/{head_name}{fitted.suffix}"
            fitted.save(staging / rel)
            specs[head_name] = {"featurizer": fitted.featurizer, "kind": fitted.kind, "file": rel,
                                "params": fitted.params}
        Familiarity.fit(features["cnn"], dataset.groups).save(staging / FAMILIARITY_FILE)
        t1 = time.perf_counter()
        if copy_featurizer:
            (staging / "featurizer").mkdir()
            for f in (cnn, *others.values()):
                for path in (f.path, f.path.with_suffix(".json")):
                    if path.is_file():
                        shutil.copy2(path, staging / "featurizer" / path.name)

        def cnn_file(f: OnnxFeaturizer) -> str:
            return f"featurizer/{f.path.name}" if copy_featurizer else os.path.relpath(f.path, out.resolve())

        entry = {"id": cnn.id, "file": cnn_file(cnn), "arch": cnn.meta.get("arch"),
                 "preprocessing": cnn.meta.get("preprocessing"),
                 **({"finetuning": cnn.meta["finetuning"]} if "finetuning" in cnn.meta else {}), **cnn_entry,
                 "variants": {k: _variant(f, cnn_file(f), cv, k) for k, f in others.items()}}
        manifest = write_manifest(staging / "manifest.json", _manifest(
            dataset, cv, name, specs, default_head, {k: v for k, v in entry.items() if v is not None}))
        publish_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if timings is not None:
        timings["final_fit"] = round(t1 - t0, 1)
        timings["writing"] = round(time.perf_counter() - t1, 1)
    return manifest


def _manifest(dataset: Dataset, cv: dict | None, name: str, heads: dict, default_head: str | None,
              cnn: dict) -> dict:
    created = datetime.now(timezone.utc)
    return {
        "name": name,
        "version": f"{name}-{created:%Y%m%d}-{dataset.fingerprint()[:8]}",
        "created_at": created.isoformat(timespec="seconds"),
        "scorer_version": __version__,
        "genres": dataset.genres,
        "featurizers": {
            "cnn": cnn,
            "colour": {"id": ColourFeaturizer.id, "bins": [8, 8, 8], "space": "HSV (OpenCV)", "normalisation": "L1"},
        },
        "heads": heads,
        "ensemble": list(heads),
        "default_head": default_head or (best_head(cv) if cv else "ensemble"),
        "aliases": aliases_for(dataset.genres),
        "training_set": {"source": ", ".join(dataset.sources), "images": len(dataset.examples),
                         "sha256": dataset.fingerprint(), "per_genre": dataset.counts(),
                         "per_source": dataset.counts_by_source(),
                         "dropped_duplicates": dataset.dropped_duplicates,
                         "dropped_conflicts": dataset.dropped_conflicts,
                         "grouping": dataset.grouping,
                         "unfetched": dict(dataset.unfetched),
                         "left_out": dict(dataset.skipped)},
        "familiarity": familiarity_manifest(cv),
        "cv": _cv_summary(cv) if cv else None,
        "calibration": calibration_manifest(cv) if cv else None,
    }
