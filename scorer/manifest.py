"""A model's manifest, typed and versioned, with one reader (:func:`read_manifest`) and one writer
(:func:`write_manifest`).

``manifest.json`` says what a model directory holds: genres and their aliases, featurizers (each precision's
file), heads, the default head, the blend, each head's calibration, the familiarity scale, and the training
set with its cross-validated and held-out figures. :class:`Manifest` types what scoring reads; the figures
(``cv``, ``training_set``) stay the plain JSON they are, for reports and ``scorer info``. ``raw`` keeps the
whole file as read: outputs record it.

``schema_version`` 2 is the first written with a version; a manifest without one is version 1, read the same
way (its fields are a subset). A manifest from a newer scorer is refused with a message that says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scorer.files import atomic_write
from scorer.heads.calibration import Calibration

#: the manifest format this scorer writes (and the newest it reads)
SCHEMA_VERSION = 2
#: what every manifest has, whatever its version
REQUIRED = ("name", "version", "genres", "default_head", "heads", "featurizers")


@dataclass(frozen=True)
class HeadCalibration:
    """One head's calibration as fitted (``used`` False: fitted, but it did not help, so not applied)."""

    temperature: float = 1.0
    slope: float = 0.0
    mix: float = 0.0
    used: bool = True

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> HeadCalibration:
        return cls(float(spec.get("temperature", 1.0)), float(spec.get("slope", 0.0)), float(spec.get("mix", 0.0)),
                   bool(spec.get("used", True)))

    def calibration(self) -> Calibration:
        """What scoring applies: the identity when the calibration is not used."""
        return Calibration(self.temperature, self.slope, self.mix) if self.used else Calibration()


@dataclass(frozen=True)
class Featurizer:
    """One featurizer: its file per precision (``variants``: ``{"fp32": {"id", "file"}, "int8": …}``), the
    precision and test-time augmentation it scores with by default, and the rest of its entry (``spec``)."""

    variants: dict[str, dict[str, Any]]
    default_precision: str = "fp32"
    tta: str = "none"
    spec: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Featurizer:
        variants = {"fp32": spec, **(spec.get("variants") or {})}
        return cls(variants, str(spec.get("default_precision", "fp32")), str(spec.get("tta", "none")), spec)


@dataclass(frozen=True)
class Manifest:
    """A model directory's ``manifest.json``, typed where scoring reads it."""

    name: str
    version: str
    genres: tuple[str, ...]
    default_head: str
    heads: dict[str, dict[str, Any]]
    featurizers: dict[str, dict[str, Any]]
    ensemble: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    blend: dict[str, Any] | None = None
    calibration: dict[str, HeadCalibration] = field(default_factory=dict)
    familiarity: dict[str, Any] | None = None
    cv: dict[str, Any] | None = None
    training_set: dict[str, Any] | None = None
    created_at: str | None = None
    scorer_version: str | None = None
    schema_version: int = SCHEMA_VERSION
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> Manifest:
        """Check and type a manifest; ``ValueError`` naming ``source`` and what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: not a JSON object")
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or version < 1:
            raise ValueError(f"{source}: schema_version {version!r} is not a version number")
        if version > SCHEMA_VERSION:
            raise ValueError(f"{source}: written by a newer scorer (manifest schema {version}; this scorer reads up "
                             f"to {SCHEMA_VERSION}): upgrade scorer")
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise ValueError(f"{source}: not a model manifest (missing {', '.join(missing)})")
        heads_cal = ((data.get("calibration") or {}).get("heads") or {})
        return cls(
            name=str(data["name"]), version=str(data["version"]), genres=tuple(data["genres"]),
            default_head=str(data["default_head"]), heads=dict(data["heads"]), featurizers=dict(data["featurizers"]),
            ensemble=tuple(data.get("ensemble") or ()), aliases=dict(data.get("aliases") or {}),
            blend=data.get("blend") or None,
            calibration={name: HeadCalibration.from_dict(spec) for name, spec in heads_cal.items()},
            familiarity=data.get("familiarity") or None, cv=data.get("cv") or None,
            training_set=data.get("training_set") or None, created_at=data.get("created_at"),
            scorer_version=data.get("scorer_version"), schema_version=version, raw=data)

    @property
    def cnn(self) -> Featurizer:
        return Featurizer.from_dict(self.featurizers["cnn"])

    def head_calibration(self, head: str) -> Calibration:
        """What scoring applies to ``head``'s probabilities (the identity when it has none)."""
        spec = self.calibration.get(head)
        return spec.calibration() if spec else Calibration()


def read_manifest(path: Path) -> Manifest:
    """The manifest at ``path``: ``FileNotFoundError`` when there is none, ``ValueError`` when it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    return Manifest.from_dict(data, str(path))


def write_manifest(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Write ``data`` as the manifest at ``path`` (atomically), stamped with :data:`SCHEMA_VERSION` and checked
    the way :func:`read_manifest` will read it; returns what was written."""
    out = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in data.items() if k != "schema_version"}}
    Manifest.from_dict(out, str(path))
    atomic_write(Path(path), (json.dumps(out, indent=2) + "\n").encode())
    return out
