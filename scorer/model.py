"""A model directory: ``manifest.json`` + featurizer + head files, loaded with runtime deps only."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from .featurize import ColourFeaturizer, FlipAveraged, OnnxFeaturizer
from .heads import EnsembleHead, Head, load_head

ENSEMBLE = "ensemble"
#: a weighted ensemble whose weights were chosen on held-back covers (``manifest["blend"]``)
BLEND = "blend"
#: the precisions a featurizer can ship in (``int8``: static QDQ, see ``training/quantize.py``)
PRECISIONS = ("fp32", "int8")


SHIPPED_FEATURIZER = "featurizer/efficientnet-lite0.onnx"


def models_root() -> Path:
    """Where the shipped models live: inside the installed package, or the repo's ``models/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_models", here.parent / "models"):
        if (candidate / SHIPPED_FEATURIZER).exists():
            return candidate
    raise FileNotFoundError(f"the shipped models are missing: reinstall scorer (models/{SHIPPED_FEATURIZER})")


def default_model_dir() -> Path:
    return models_root() / "default"


def shipped_featurizer() -> Path:
    return models_root() / SHIPPED_FEATURIZER


class Model:
    """Genres, featurizers and heads of one trained model."""

    def __init__(self, directory: Path | None = None, threads: int | None = None, precision: str | None = None):
        self.dir = Path(directory) if directory is not None else default_model_dir()
        manifest_path = self.dir / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"{self.dir} is not a model directory (no manifest.json)")
        self.manifest: dict = json.loads(manifest_path.read_text())
        self.genres: list[str] = list(self.manifest["genres"])
        self.default_head: str = self.manifest["default_head"]
        self.threads = threads
        cnn = self.manifest["featurizers"]["cnn"]
        #: ``{"fp32": {"id", "file"}, "int8": {...}}``: the same network at each precision it ships in
        self.variants: dict[str, dict] = {"fp32": cnn, **cnn.get("variants", {})}
        self.precision: str = precision or cnn.get("default_precision", "fp32")
        if self.precision not in self.variants:
            raise ValueError(f"precision {self.precision!r} is not shipped with {self.dir}; "
                             f"it has: {', '.join(self.variants)}")
        # outputs record the precision, and incremental runs rescore when it changes
        self.version: str = f"{self.manifest['version']}+{self.precision}"
        self._heads: dict[str, Head] = {}

    @property
    def head_names(self) -> list[str]:
        return [*self.manifest["heads"], ENSEMBLE, *([BLEND] if self.manifest.get(BLEND) else [])]

    @property
    def cnn_path(self) -> Path:
        return (self.dir / self.variants[self.precision]["file"]).resolve()

    @cached_property
    def cnn(self) -> OnnxFeaturizer | FlipAveraged:
        """The CNN featurizer, with flip test-time augmentation when the model was chosen with it."""
        featurizer = OnnxFeaturizer(self.cnn_path, threads=self.threads)
        return FlipAveraged(featurizer) if self.manifest["featurizers"]["cnn"].get("tta") == "flip" else featurizer

    @cached_property
    def colour(self) -> ColourFeaturizer:
        return ColourFeaturizer()

    def featurizer(self, kind: str):
        if kind not in ("cnn", "colour"):
            raise KeyError(f"unknown featurizer kind {kind!r}")
        return getattr(self, kind)

    def head(self, name: str | None = None) -> Head | EnsembleHead:
        name = name or self.default_head
        if name == ENSEMBLE:
            members = self.manifest.get("ensemble") or list(self.manifest["heads"])
            return EnsembleHead([self.head(m) for m in members])
        if name == BLEND and self.manifest.get(BLEND):
            weights = self.manifest[BLEND]["weights"]
            return EnsembleHead([self._load_head(m) for m in weights], name=BLEND, weights=list(weights.values()))
        if name not in self.manifest["heads"]:
            raise KeyError(f"unknown head {name!r}; this model has: {', '.join(self.head_names)}")
        return self._load_head(name)

    def _load_head(self, name: str) -> Head:
        if name not in self._heads:
            spec = self.manifest["heads"][name]
            self._heads[name] = load_head(name, spec["featurizer"], self.dir / spec["file"])
        return self._heads[name]

    @staticmethod
    def kinds_for(head: Head | EnsembleHead) -> list[str]:
        if isinstance(head, EnsembleHead):
            return sorted({m.featurizer for m in head.members})
        return [head.featurizer]

    def predict(self, images: np.ndarray, head: Head | EnsembleHead) -> np.ndarray:
        """Genre probabilities ``(N, n_genres)`` for a uint8 image batch."""
        features = {k: self.featurizer(k)(images) for k in self.kinds_for(head)}
        if isinstance(head, EnsembleHead):
            return head.predict_proba_from(features)
        return head.predict_proba(features[head.featurizer])
