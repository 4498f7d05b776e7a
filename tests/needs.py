"""What a test needs from the machine: in CI (``CI`` set to 1/true/yes) a missing need fails the
test, so a broken install never passes as a skip; elsewhere the test is skipped with the reason."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """``CI=true`` (or 1, yes, on); ``CI=false`` and ``CI=`` are not CI."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def missing(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI must provide it: .ci/run installs what the tests need)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def module(name: str, reason: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing(f"{reason}: {e}")
