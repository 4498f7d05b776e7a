"""The model manifest: typed, versioned, one reader and one writer; the shipped model and older manifests load."""

from __future__ import annotations

import json
import shutil

import pytest

from scorer.heads.calibration import Calibration
from scorer.manifest import SCHEMA_VERSION, Manifest, read_manifest, write_manifest
from scorer.model import Model, default_model_dir


def test_the_shipped_manifest_reads_typed():
    path = default_model_dir() / "manifest.json"
    raw = json.loads(path.read_text())
    m = read_manifest(path)
    assert m.schema_version == raw.get("schema_version", 1)
    assert m.genres == tuple(raw["genres"]) and m.default_head == raw["default_head"]
    assert set(m.calibration) == set(raw["calibration"]["heads"])
    blend = raw["calibration"]["heads"]["blend"]
    expected = (Calibration(blend["temperature"], blend["slope"], blend["mix"]) if blend.get("used", True)
                else Calibration())
    assert m.head_calibration("blend") == expected == Model().calibration("blend")
    assert m.head_calibration("no-such-head") == Calibration()
    assert m.cnn.default_precision == raw["featurizers"]["cnn"].get("default_precision", "fp32")
    assert set(m.cnn.variants) == {"fp32", *raw["featurizers"]["cnn"].get("variants", {})}
    assert m.raw == raw


def test_written_manifests_carry_the_schema_version_and_load(tmp_path):
    model_dir = tmp_path / "m"
    shutil.copytree(default_model_dir(), model_dir)
    raw = json.loads((model_dir / "manifest.json").read_text())
    raw.pop("schema_version", None)  # as written before the schema had a version
    (model_dir / "manifest.json").write_text(json.dumps(raw))
    old = Model(model_dir)
    assert old.spec.schema_version == 1 and old.genres == list(raw["genres"])
    written = write_manifest(model_dir / "manifest.json", {**raw, "name": "renamed"})
    assert written["schema_version"] == SCHEMA_VERSION
    again = Model(model_dir)
    assert again.spec.schema_version == SCHEMA_VERSION and again.manifest["name"] == "renamed"
    assert again.calibration("blend") == old.calibration("blend")


def test_bad_manifests_are_refused_with_the_reason(tmp_path):
    good = json.loads((default_model_dir() / "manifest.json").read_text())
    with pytest.raises(ValueError, match="newer scorer"):
        Manifest.from_dict({**good, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(ValueError, match="missing default_head, heads"):
        Manifest.from_dict({k: v for k, v in good.items() if k not in ("default_head", "heads")})
    with pytest.raises(ValueError, match="not a version number"):
        Manifest.from_dict({**good, "schema_version": "2"})
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_manifest(bad)
    with pytest.raises(FileNotFoundError):
        read_manifest(tmp_path / "none.json")
    with pytest.raises(ValueError, match="missing"):
        write_manifest(tmp_path / "out.json", {"name": "x"})
    assert not (tmp_path / "out.json").exists()  # nothing written when it would not load
