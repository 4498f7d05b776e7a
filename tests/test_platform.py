"""Linux and macOS only: elsewhere ``import scorer`` stops with one line (not a failure deep in a run)."""

from __future__ import annotations

import subprocess
import sys


def _import_as(os_name: str) -> subprocess.CompletedProcess:
    code = f"import os; os.name = {os_name!r}; import scorer; print('imported', scorer.__version__)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)


def test_windows_is_refused_at_import_with_one_line() -> None:
    done = _import_as("nt")
    assert done.returncode == 1 and "imported" not in done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last == ("ImportError: scorer runs on Linux and macOS only (it needs POSIX file locks); "
                    "on Windows, run it in WSL")


def test_posix_imports() -> None:
    done = _import_as("posix")
    assert done.returncode == 0 and done.stdout.startswith("imported "), done.stderr
