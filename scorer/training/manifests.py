"""The sections a trained model's manifest keeps of its training: the other precision, the CV figures, the
familiarity scale and the calibration (written by :func:`scorer.manifest.write_manifest`)."""

from __future__ import annotations

from scorer.featurize import OnnxFeaturizer


def _variant(f: OnnxFeaturizer, file: str, cv: dict | None, name: str) -> dict:
    """A model's other precision: its file, how it was made, and what it changes under CV."""
    spec = {"id": f.id, "file": file, "quantization": f.meta.get("quantization"),
            "quantization_check": f.meta.get("quantization_check")}
    if cv and name in cv.get("variants", {}):
        spec["cv"] = variant_cv(cv, name)
    return spec


def variant_cv(cv: dict, name: str) -> dict:
    """Each head's balanced accuracy with variant ``name`` under CV, and its change."""
    v = cv["variants"][name]
    return {n: {"balanced_accuracy": round(m["balanced_accuracy"], 4), "change": v["balanced_accuracy_change"][n]}
            for n, m in v["heads"].items()}


#: the per-head CV figures a manifest keeps
CV_FIELDS = ("accuracy", "balanced_accuracy", "recall", "balanced_accuracy_per_fold", "accuracy_per_fold",
             "precision_at")
#: what a model keeps of a CV besides its heads' figures
CV_SECTIONS = ("by_source", "heldout", "heldout_summary", "unknown_genres")
FAMILIARITY_FILE = "familiarity.npz"
FAMILIARITY_SCALE = ("the share of the training covers (each compared with the covers of other artists and "
                     "near-duplicate groups) that look less like the training covers than this cover does: about 0.5 "
                     "for a typical cover of the kind the model was trained on, near 0 for a cover unlike all of them")


def _cv_summary(cv: dict) -> dict:
    return {"folds": cv["folds"], "seed": cv["seed"], "stratified": True, "grouped": cv.get("grouped", False),
            "missing_genres": cv.get("missing_genres"),
            "heads": {n: {k: m[k] for k in CV_FIELDS if k in m} for n, m in cv["heads"].items()},
            **{k: cv[k] for k in CV_SECTIONS if cv.get(k)}}


def familiarity_manifest(cv: dict | None) -> dict:
    """The familiarity scale's file and definition, and (with a CV) how familiar out-of-fold and held-out covers
    were on the scale of the covers their heads were fitted on."""
    from scorer.heads.familiarity import DIMS, K

    return {"file": FAMILIARITY_FILE, "featurizer": "cnn",
            "method": f"mean cosine similarity of the cover's CNN features, projected on the training covers' {DIMS} "
                      f"principal components, to its {K} most similar training covers",
            "scale": FAMILIARITY_SCALE, **((cv or {}).get("familiarity") or {})}


CALIBRATION_FIELDS = ("temperature", "slope", "mix", "used", "ece_before", "ece_after", "log_loss_before",
                      "log_loss_after", "reliability_before", "reliability_after", "heldout")


def calibration_manifest(cv: dict) -> dict:
    """What a model ships of its CV calibration: each head's temperature, familiarity slope and mix, its ECE
    before/after out of fold and on held-out collections, and the reliability diagrams' bins (``scorer report``
    draws them)."""
    cal = cv["calibration"]
    return {**{k: v for k, v in cal.items() if k != "heads"},
            "heads": {n: {k: c[k] for k in CALIBRATION_FIELDS if k in c} for n, c in cal["heads"].items()}}
