"""Shared fixtures. Real covers come from ../shared/data (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from needs import in_ci, missing

# A 2-core CI machine running other tests is slow now and then: no per-example deadline there (a slow
# example is not a failure), every example printed so a failure can be replayed.
settings.register_profile("ci", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
if in_ci():
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SCORER_SHARED_DATA", REPO.parent / "shared" / "data"))
COVERS = SHARED / "covers-5genre"
SPOTIFY = SHARED / "covers-spotify"


def _shared(folder: Path) -> Path:
    """A shared data folder. Required in CI (CI=true): a missing folder fails there, never skips."""
    if not (folder / "labels.csv").exists():
        missing(f"real covers not found at {folder} (set SCORER_SHARED_DATA to the shared data folder)")
    return folder


@pytest.fixture(scope="session")
def covers_dir() -> Path:
    """The 4,452 real Discogs covers in 5 genres."""
    return _shared(COVERS)


@pytest.fixture(scope="session")
def spotify_dir() -> Path:
    """The 1,573 real Spotify covers in 6 genres, with artists."""
    return _shared(SPOTIFY)


@pytest.fixture(scope="session")
def sample_covers(covers_dir: Path) -> list[Path]:
    """A fixed, small sample of real covers: 8 per genre, sorted."""
    out = []
    for genre in sorted(p for p in covers_dir.iterdir() if p.is_dir()):
        out += sorted(genre.glob("*.jpg"))[:8]
    return out


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Cover and feature caches go to a per-session temp folder, never the user's ~/.cache.

    Session-scoped, so that module-scoped fixtures (which run before any function-scoped one)
    are isolated too.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCORER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


@pytest.fixture
def no_proxy(monkeypatch):
    """Loopback requests must never go through a proxy configured on the machine."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def cdn(sample_covers):
    """A loopback cover CDN serving the sample covers, one per test module."""
    from fakes.cdn import CoverCDN

    with CoverCDN(sample_covers) as server:
        yield server
