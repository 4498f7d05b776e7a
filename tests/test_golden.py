"""The shipped model's outputs, pinned, and its calibration reaching them (issue 26).

- golden: eight fixed covers (``scorer demo``'s drawn ones, :mod:`golden`) scored at fp32 and int8 with the
  default head and three calibrated ones give the genres, probabilities and familiarity in ``golden.json``
  to 1e-5. A change of the model, or of anything scoring computes (decoding, the network, the heads, the
  calibration), fails here; when it is meant, regenerate with ``python tests/golden.py --update``.
- calibration: the heads' uncalibrated probabilities (``Model.head(name, calibrated=False)``) and the output's
  agree as the manifest says they must: the output's log-odds are the raw ones (mixed with ``mix`` of the
  uniform) divided by ``temperature * exp(slope * (1 - familiarity))``, computed here from the manifest's
  numbers and the output's own familiarity column.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from golden import (
    GOLDEN,
    HEADS,
    PRECISIONS,
    TOLERANCE,
    UPDATE,
    cover_bytes,
    covers_checksum,
    frames,
    model_checksum,
    outputs,
)

import scorer
from scorer.decode import decode_image

CALIBRATED = HEADS[1:]  # the pinned heads the shipped model calibrates


@pytest.fixture(scope="module")
def covers() -> list[bytes]:
    return cover_bytes()


@pytest.fixture(scope="module")
def scored(covers) -> dict:
    """Every precision and head pinned, scored once for the module."""
    return frames(covers)


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


def test_golden_model_and_covers_are_the_pinned_ones(golden, covers):
    model = scorer.load_model()
    assert model_checksum(model.dir) == golden["model"]["sha256"], (
        f"the shipped model changed ({golden['model']['version']} pinned, {model.spec.version} now): if that "
        f"is meant, regenerate {GOLDEN.name} with `{UPDATE}` and commit it")
    assert covers_checksum(covers) == golden["covers"]["sha256"], (
        f"the drawn covers changed (scorer demo's draw_cover, or Pillow {golden['made_with']['pillow']} pinned): "
        f"if that is meant, regenerate with `{UPDATE}`")


def test_golden_outputs(golden, scored):
    now = outputs(scored)
    assert sorted(now) == sorted(golden["outputs"])
    wrong = []
    for key, columns in golden["outputs"].items():
        for column, want in columns.items():
            got = now[key][column]
            if isinstance(want[0], str):
                if got != want:
                    wrong.append(f"{key} {column}: {got} (pinned {want})")
            elif not np.allclose(got, want, rtol=0, atol=TOLERANCE):
                i = int(np.argmax(np.abs(np.subtract(got, want))))
                wrong.append(f"{key} {column}: cover {i} {got[i]:.6f} (pinned {want[i]:.6f})")
    assert not wrong, (f"{len(wrong)} outputs differ from {GOLDEN.name} by more than {TOLERANCE} (made with "
                       f"{golden['made_with']}); if the change is meant, regenerate with `{UPDATE}`:\n"
                       + "\n".join(wrong[:20]))


def _log_odds(p: np.ndarray) -> np.ndarray:
    """Each genre's log-probability less the row's largest: what temperature scaling divides."""
    logp = np.log(np.asarray(p, dtype=np.float64))
    return logp - logp.max(axis=1, keepdims=True)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_shipped_calibration_reaches_the_output(covers, scored, precision):
    model = scored[f"{precision}/{CALIBRATED[0]}"][0]
    manifest = json.loads((model.dir / "manifest.json").read_text())["calibration"]["heads"]
    images = np.stack([decode_image(c) for c in covers])
    for name in CALIBRATED:
        c = manifest[name]
        assert c["temperature"] != 1.0 and c["used"], f"{name}: pick a head the shipped model calibrates"
        raw_head = model.head(name, calibrated=False)
        raw, familiarity = model.predict_from_features(model.features(images, model.needs(raw_head)), raw_head)
        df = scored[f"{precision}/{name}"][1]
        out = df[[f"p_{g}" for g in model.genres]].to_numpy(np.float64)
        fam = df["familiarity"].to_numpy(np.float64)
        np.testing.assert_allclose(fam, familiarity, atol=1e-6)
        # the manifest's calibration, applied here by hand: uniform mix, then log-odds over T(familiarity)
        mixed = (1 - c["mix"]) * raw.astype(np.float64) + c["mix"] / raw.shape[1]
        t = c["temperature"] * np.exp(c["slope"] * (1 - np.clip(fam, 0, 1)))
        want = _log_odds(mixed) / t[:, None]
        np.testing.assert_allclose(_log_odds(out), want, rtol=0, atol=1e-4,
                                   err_msg=f"{precision} {name}: the output is not the raw probabilities "
                                           f"calibrated as the manifest says (T={c['temperature']}, "
                                           f"slope={c['slope']}, mix={c['mix']})")
        # and the check can tell: the calibrated log-odds are far from the uncalibrated ones
        assert np.abs(_log_odds(out) - _log_odds(mixed)).max() > 0.05, name
