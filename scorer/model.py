"""A model directory: ``manifest.json`` + featurizer + head files, loaded with runtime deps only."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import numpy as np

from scorer.featurize import ColourFeaturizer, FlipAveraged, OnnxFeaturizer
from scorer.heads import EnsembleHead, Head, load_head
from scorer.heads.calibration import CalibratedHead, Calibration
from scorer.heads.familiarity import Familiarity
from scorer.manifest import Manifest, read_manifest

ENSEMBLE = "ensemble"
#: a weighted ensemble whose weights were chosen on held-back covers (``manifest["blend"]``)
BLEND = "blend"
#: the precisions a featurizer can ship in (``int8``: static QDQ, see ``scorer/training/quantize.py``)
PRECISIONS = ("fp32", "int8")
#: test-time augmentations: ``flip`` runs the CNN twice per cover (the cover and its mirror image)
TTAS = ("none", "flip")


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


def shipped_models() -> list[str]:
    """Names of the models shipped with scorer (``--model NAME``)."""
    root = models_root()
    return sorted(p.name for p in root.iterdir() if (p / "manifest.json").is_file())


def resolve_model_dir(model: str | os.PathLike | None) -> Path:
    """``--model``: a model directory, or the name of a shipped model (``scorer info`` lists them)."""
    if model is None:
        return default_model_dir()
    path = Path(model)
    if (path / "manifest.json").is_file() or path.is_absolute() or len(path.parts) > 1:
        return path
    shipped = models_root() / path.name
    return shipped if (shipped / "manifest.json").is_file() else path


def shipped_featurizer() -> Path:
    return models_root() / SHIPPED_FEATURIZER


class Model:
    """Genres, featurizers and heads of one trained model."""

    def __init__(self, directory: str | os.PathLike | None = None, threads: int | None = None,
                 precision: str | None = None, tta: str | None = None):
        self.dir = resolve_model_dir(directory)
        manifest_path = self.dir / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"{self.dir} is not a model directory (no manifest.json) nor the name of a "
                                    f"shipped model ({', '.join(shipped_models())})")
        #: the manifest, typed (:class:`~scorer.manifest.Manifest`); :attr:`manifest` is the JSON as read
        self.spec: Manifest = read_manifest(manifest_path)
        self.manifest: dict = self.spec.raw
        self.genres: list[str] = list(self.spec.genres)
        self.default_head: str = self.spec.default_head
        self.threads = threads
        cnn = self.spec.cnn
        #: ``{"fp32": {"id", "file"}, "int8": {...}}``: the same network at each precision it ships in
        self.variants: dict[str, dict] = cnn.variants
        self.precision: str = precision or cnn.default_precision
        if self.precision not in self.variants:
            raise ValueError(f"precision {self.precision!r} is not shipped with {self.dir}; "
                             f"it has: {', '.join(self.variants)}")
        #: test-time augmentation: ``flip`` (features averaged with the mirrored cover's) or ``none``
        self.tta: str = tta or cnn.tta
        if self.tta not in TTAS:
            raise ValueError(f"test-time augmentation {self.tta!r}: use one of {', '.join(TTAS)}")
        # outputs record precision and TTA, and incremental runs rescore when either changes
        self.version: str = f"{self.spec.version}+{self.precision}" + ("+flip" if self.tta == "flip" else "")
        self._heads: dict[str, Head] = {}

    @property
    def aliases(self) -> dict[str, str]:
        """``{alias: genre}``: other names ``--keep`` takes for this model's genres."""
        return dict(self.spec.aliases)

    def calibration(self, head: str) -> Calibration:
        """The head's :class:`~scorer.heads.calibration.Calibration` (temperature, familiarity slope, mix; the identity
        when it has none), fitted on out-of-fold and held-out-collection predictions."""
        return self.spec.head_calibration(head)

    @cached_property
    def familiarity(self) -> Familiarity | None:
        """The familiarity scale of the training covers (``None`` for a model trained before it existed)."""
        spec = self.spec.familiarity
        return Familiarity.load(self.dir / spec["file"]) if spec else None

    @property
    def head_names(self) -> list[str]:
        return [*self.spec.heads, ENSEMBLE, *([BLEND] if self.spec.blend else [])]

    @property
    def heads(self) -> list[str]:
        """The heads this model can score with (``head=`` / ``--head``); :attr:`default_head` is the best by CV."""
        return self.head_names

    def info(self) -> dict:
        """What ``scorer info`` shows, as data: name, version, genres, aliases, heads, precision, test-time
        augmentation, training set, and each head's cross-validated figures (``cv``, from the manifest)."""
        m = self.manifest
        return {"name": m.get("name"), "version": self.version, "dir": str(self.dir), "genres": list(self.genres),
                "aliases": self.aliases, "heads": self.heads, "default_head": self.default_head,
                "precision": self.precision, "precisions": list(self.variants), "tta": self.tta,
                "featurizer_id": self.variants[self.precision]["id"], "training_set": m.get("training_set"),
                "calibration": {h: self.calibration(h).as_dict() for h in self.heads},
                "familiarity": {k: v for k, v in (m.get("familiarity") or {}).items() if k != "file"} or None,
                "cv": m.get("cv")}

    def __repr__(self) -> str:
        return f"<scorer Model {self.manifest.get('name')} {self.version}: {', '.join(self.genres)}>"

    @property
    def cnn_path(self) -> Path:
        return (self.dir / self.variants[self.precision]["file"]).resolve()

    @cached_property
    def cnn(self) -> OnnxFeaturizer | FlipAveraged:
        """The CNN featurizer, flip-averaged with ``tta="flip"``."""
        featurizer = OnnxFeaturizer(self.cnn_path, threads=self.threads)
        return FlipAveraged(featurizer) if self.tta == "flip" else featurizer

    @cached_property
    def colour(self) -> ColourFeaturizer:
        return ColourFeaturizer()

    def featurizer(self, kind: str):
        if kind not in ("cnn", "colour"):
            raise KeyError(f"unknown featurizer kind {kind!r}")
        return getattr(self, kind)

    def head(self, name: str | None = None, calibrated: bool = True) -> Head | EnsembleHead | CalibratedHead:
        """A head by name (default: the model's), with its shipped calibration unless ``calibrated`` is false."""
        name = name or self.default_head
        head = self._raw_head(name)
        calibration = self.calibration(name) if calibrated else Calibration()
        return head if calibration.identity else CalibratedHead(head, calibration)

    def _raw_head(self, name: str) -> Head | EnsembleHead:
        if name == ENSEMBLE:
            members = list(self.spec.ensemble) or list(self.spec.heads)
            return EnsembleHead([self._load_head(m) for m in members])
        if name == BLEND and self.spec.blend:
            weights = self.spec.blend["weights"]
            return EnsembleHead([self._load_head(m) for m in weights], name=BLEND, weights=list(weights.values()))
        if name not in self.spec.heads:
            raise KeyError(f"unknown head {name!r}; this model has: {', '.join(self.head_names)}")
        return self._load_head(name)

    def _load_head(self, name: str) -> Head:
        if name not in self._heads:
            spec = self.spec.heads[name]
            self._heads[name] = load_head(name, spec["featurizer"], self.dir / spec["file"])
        return self._heads[name]

    @staticmethod
    def kinds_for(head: Head | EnsembleHead | CalibratedHead) -> list[str]:
        inner = head.head if isinstance(head, CalibratedHead) else head
        if isinstance(inner, EnsembleHead):
            return sorted({m.featurizer for m in inner.members})
        return [inner.featurizer]

    def predict(self, images: np.ndarray, head: Head | EnsembleHead | CalibratedHead) -> np.ndarray:
        """Genre probabilities ``(N, n_genres)`` for a uint8 image batch."""
        return self.predict_with_familiarity(images, head)[0]

    def predict_with_familiarity(self, images: np.ndarray, head: Head | EnsembleHead | CalibratedHead
                                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """Genre probabilities ``(N, n_genres)`` and each cover's familiarity (``None`` when the model has no
        familiarity scale) for a uint8 image batch."""
        return self.predict_from_features(self.features(images, self.needs(head)), head)

    @property
    def network_key(self) -> tuple[str, str]:
        """What makes two models' CNN features the same: the network's id at this precision, and the TTA."""
        return str(self.variants[self.precision]["id"]), self.tta

    def needs(self, head: Head | EnsembleHead | CalibratedHead, cnn: bool = False) -> list[str]:
        """The featurizer kinds ``head`` (and the familiarity scale, or ``cnn=True``) read."""
        extra = {"cnn"} if cnn or self.familiarity is not None else set()
        return sorted(set(self.kinds_for(head)) | extra)

    def features(self, images: np.ndarray, kinds: list[str], known: dict[str, np.ndarray] | None = None
                 ) -> dict[str, np.ndarray]:
        """Features of each kind for a uint8 image batch; ``known`` holds kinds already computed for these images
        by a model with the same network (:attr:`network_key`), which are not computed again."""
        known = known or {}
        return {k: known[k] if k in known else self.featurizer(k)(images) for k in kinds}

    def predict_from_features(self, features: dict[str, np.ndarray], head: Head | EnsembleHead | CalibratedHead
                              ) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and familiarity from features :meth:`features` computed (every kind :meth:`needs`)."""
        familiarity = self.familiarity(features["cnn"]) if self.familiarity is not None else None
        inner = head.head if isinstance(head, CalibratedHead) else head
        if isinstance(head, CalibratedHead):
            if isinstance(inner, EnsembleHead):
                return head.predict_proba_from(features, familiarity), familiarity
            return head.predict_proba(features[inner.featurizer], familiarity), familiarity
        if isinstance(inner, EnsembleHead):
            return inner.predict_proba_from(features), familiarity
        return inner.predict_proba(features[inner.featurizer]), familiarity
