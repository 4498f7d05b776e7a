"""Help, model info and start-up cost of the command line."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from scorer.cli import app
from scorer.model import Model
from scorer.training.evaluate import best_head


def test_help_lists_the_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("catalog", "demo", "evaluate", "train", "info", "report"):
        assert command in result.output


def test_cli_import_does_not_load_heavy_modules():
    code = ("import sys, scorer.cli; heavy = [m for m in ('onnxruntime', 'numpy', 'pyarrow', 'cv2', 'PIL', "
            "'sklearn', 'xgboost', 'torch', 'aiohttp', 'spotipy', 'ray', 'pandas') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_info_shows_the_shipped_model():
    model = Model()
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert ", ".join(model.genres) in result.output
    assert model.version in result.output
    assert model.default_head in result.output
    cv = model.manifest["cv"]
    head = model.default_head
    assert head == best_head(cv)
    assert f"{cv['heads'][head]['balanced_accuracy']:.3f}" in result.output
    # the alias table, the calibration and the figures per store and across stores
    assert "rap, hiphop_rap" in result.output and "edm, electronica, dance" in result.output
    cal = model.manifest["calibration"]["heads"][head]
    assert f"{cal['ece_before']:.3f}" in result.output and f"{cal['ece_after']:.3f}" in result.output
    assert cal["ece_after"] <= 0.05  # the default head's out-of-fold ECE, after calibration
    for source, r in cv["by_source"].items():
        assert f"on {source} covers ({r['covers']}): balanced accuracy " \
               f"{r['heads'][head]['balanced_accuracy']:.3f}" in result.output
    # what to expect on covers from elsewhere comes first, split by split, then the familiarity scale
    out = " ".join(result.output.split())
    assert out.index("collections it did not train on") < out.index("on covers like the training ones")
    for name, split in cv["heldout"].items():
        h = split["heads"][head]
        assert f"{name} ({', '.join(split['genres'])}): balanced accuracy {h['balanced_accuracy']:.3f}" in out
    assert "familiarity (0-1):" in out


def test_models_are_chosen_by_name_or_folder(tmp_path):
    by_name = CliRunner().invoke(app, ["info", "--model", "default"])
    assert by_name.exit_code == 0 and Model().version in by_name.output
    result = CliRunner().invoke(app, ["info", "--model", "no-such-model"])
    assert result.exit_code == 2
    assert "not a model directory" in result.output and "shipped model (default)" in result.output


def test_info_on_a_folder_that_is_not_a_model(tmp_path):
    result = CliRunner().invoke(app, ["info", "--model", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a model directory" in result.output


def test_peak_rss_is_the_process_own_not_its_parents():
    """``ru_maxrss`` survives exec: a job started by a big parent would report the parent's peak."""
    big = bytearray(400 * 1024 * 1024)
    big[::4096] = b"\x01" * len(big[::4096])  # touch every page
    code = "from scorer.scoring import peak_rss_mb; print(peak_rss_mb())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 5 < float(out.stdout) < 300
    del big
