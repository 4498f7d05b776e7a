"""The suite can fail: in CI a missing need fails the test instead of skipping it, and ``CI=false`` is not CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = '''
import needs

def test_probe():
    needs.module("no_such_module_for_scorer_tests", "a module the probe needs")
'''


def test_a_missing_need_fails_in_ci_and_skips_elsewhere(tmp_path):
    (tmp_path / "test_probe.py").write_text(PROBE)
    tests = Path(__file__).resolve().parent
    outcomes = {}
    for ci in ("true", "1", "false", "0", ""):
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                           env={**os.environ, "CI": ci, "PYTHONPATH": str(tests)}, cwd=tmp_path,
                           capture_output=True, text=True, check=False)
        outcomes[ci] = r.stdout.strip().splitlines()[-1].split(" in ")[0]
    assert outcomes == {"true": "1 failed", "1": "1 failed", "false": "1 skipped", "0": "1 skipped", "": "1 skipped"}
