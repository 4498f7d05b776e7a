"""The cover cache is bounded on the disk: least recently used covers go first, a run (or several at once) never
takes the folder past its bound as ``du`` measures it, and ``scorer cache info|prune|clear`` report and manage it
in the figures ``du`` gives (issues 16 and 26)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scorer.cli import app
from scorer.fetch import CoverFetcher, FetchOptions
from scorer.fetch.cache import LEDGER, CoverCache, parse_size

FAST = {"allow_private_hosts": True, "retries": 0}


def du(folder: Path) -> int:
    """``du -s -B1``: the bytes the disk has allocated to ``folder`` and all below it (the oracle for the bound).
    Read while a run prunes, a file can vanish under it: du says so, exits 1 and counts the rest."""
    done = subprocess.run(["du", "-s", "-B1", str(folder)], capture_output=True, text=True, check=False)
    assert done.returncode == 0 or "No such file" in done.stderr, done.stderr
    return int(done.stdout.split()[0])


@pytest.fixture(scope="module")
def small_cdn(covers_dir):
    """A loopback CDN serving the 200 smallest real covers (0.9-4.3 kB: each less than one 4 kB block), and one
    name per cover."""
    from fakes.cdn import CoverCDN

    covers = sorted(covers_dir.rglob("*.jpg"), key=lambda p: (p.stat().st_size, p.name))[:200]
    with CoverCDN(covers) as server:
        names: dict[int, str] = {}
        i = 0
        while len(names) < len(covers):
            names.setdefault(server.cover_index(f"s{i}.jpg"), f"s{i}.jpg")
            i += 1
        server.urls = [f"{server.base}/img/{name}" for name in names.values()]
        yield server


def on_disk(root: Path) -> tuple[int, int]:
    """Files and bytes under ``root``, read back (not stat'ed): an oracle apart from the cache's own count.
    A file that a prune deletes while it is being read is not counted."""
    files = sizes = 0
    for p in root.rglob("*"):
        if p.name.startswith("."):
            continue
        try:
            sizes += len(p.read_bytes())
            files += 1
        except (FileNotFoundError, IsADirectoryError):
            continue
    return files, sizes


def test_sizes_parse():
    assert parse_size("20GB") == 20 * 10**9 and parse_size("500 MB") == 5 * 10**8
    assert parse_size("1.5GiB") == int(1.5 * 2**30) and parse_size("12345") == 12345 and parse_size(None) is None
    for bad in ("", "lots", "20 parsecs", "-1GB"):
        try:
            parse_size(bad)
        except ValueError as e:
            assert "not a size" in str(e)
        else:
            raise AssertionError(bad)


def test_a_run_never_takes_the_cache_past_its_bound(cdn, tmp_path):
    bound = 150_000
    cache = CoverCache(tmp_path / "covers", max_bytes=bound)
    urls = [f"{cdn.base}/img/bound{i}.jpg" for i in range(60)]
    peak = 0
    with CoverFetcher(FetchOptions(**FAST, concurrency=4), cache=cache) as fetcher:
        for _, got in fetcher.stream(urls, lambda u: u, window=4):
            assert isinstance(got, bytes)
            peak = max(peak, du(tmp_path / "covers"))
    assert peak <= bound
    assert cache.pruned.files > 0  # it did have to prune: the covers are several times the bound
    served = {u: cdn.body(u.rsplit("/", 1)[1])[0] for u in urls}
    assert len(set(served.values())) * 8_000 > bound  # (the covers are bigger than the bound together)


def test_least_recently_used_go_first(tmp_path):
    cache = CoverCache(tmp_path, max_bytes=None)
    blobs = {name: (name * 100_000).encode() for name in "abcd"}  # 100 kB each
    for i, name in enumerate("abc"):
        cache.store(f"https://cdn.example/{name}.jpg", blobs[name])
        for path in (cache.blob_path(cache.lookup(f"https://cdn.example/{name}.jpg")[0].sha256),
                     cache._entry_path(f"https://cdn.example/{name}.jpg")):
            os.utime(path, (1_000_000 + i, 1_000_000 + i))  # stored long ago, a before b before c
    assert cache.lookup("https://cdn.example/a.jpg") is not None  # a is used now
    held = du(tmp_path)
    # d does not fit beside the three, and once b (the least recently used) is gone the folder is under 80%
    cache.max_bytes = int(held / 0.8) + 4096
    cache.store("https://cdn.example/d.jpg", blobs["d"])
    kept = {name for name in "abcd" if cache.lookup(f"https://cdn.example/{name}.jpg") is not None}
    assert kept == {"a", "c", "d"}
    assert du(tmp_path) <= cache.max_bytes
    assert not (cache.blob_path(hashlib.sha256(blobs["b"]).hexdigest())).parent.exists()  # its emptied folder too


def test_a_cover_larger_than_the_cache_is_served_not_cached(cdn, tmp_path):
    cache = CoverCache(tmp_path / "covers", max_bytes=1_000)
    with CoverFetcher(FetchOptions(**FAST), cache=cache) as fetcher:
        [(_, got)] = list(fetcher.stream([f"{cdn.base}/img/big.jpg"], lambda u: u))
    assert isinstance(got, bytes) and len(got) > 1_000
    assert on_disk(tmp_path / "covers") == (0, 0)


def test_cache_commands(cdn, tmp_path, monkeypatch):
    monkeypatch.setenv("SCORER_CACHE_DIR", str(tmp_path / "cache"))
    catalog = tmp_path / "c.csv"
    catalog.write_text("cover_url\n" + "".join(f"{cdn.base}/img/cmd{i}.jpg\n" for i in range(12)))
    runner = CliRunner()
    result = runner.invoke(app, ["catalog", str(catalog), "--out", str(tmp_path / "s.parquet"),
                                 "--allow-private-hosts", "--cache-max-size", "10MB"])
    assert result.exit_code == 0, result.output
    (tmp_path / "cache" / "finetune" / "k").mkdir(parents=True)
    (tmp_path / "cache" / "finetune" / "k" / "checkpoint.pt").write_bytes(b"x" * 1000)

    info = json.loads(runner.invoke(app, ["cache", "info", "--json"]).output)
    files, size = on_disk(tmp_path / "cache" / "covers")
    distinct = len({cdn.body(f"cmd{i}.jpg")[0] for i in range(12)})  # names that hash to one cover share a blob
    assert files == 12 + distinct
    covers = info["parts"]["covers"]
    assert (covers["files"], covers["logical_bytes"]) == (files, size)
    assert abs(covers["bytes"] - du(tmp_path / "cache" / "covers")) <= 0.05 * covers["bytes"]
    assert abs(info["bytes"] - du(tmp_path / "cache")) <= 0.05 * info["bytes"]
    assert info["parts"]["finetune"]["logical_bytes"] == 1000 and info["root"] == str(tmp_path / "cache")

    half = covers["bytes"] // 2
    result = runner.invoke(app, ["cache", "prune", "--max-size", f"{half}B"])
    assert result.exit_code == 0, result.output
    assert 0 < du(tmp_path / "cache" / "covers") <= half and "pruned" in result.output

    result = runner.invoke(app, ["cache", "clear"])
    assert result.exit_code == 0 and on_disk(tmp_path / "cache" / "covers") == (0, 0)
    assert (tmp_path / "cache" / "finetune" / "k" / "checkpoint.pt").exists()  # resumable work kept
    result = runner.invoke(app, ["cache", "clear", "--all"])
    assert result.exit_code == 0 and on_disk(tmp_path / "cache") == (0, 0)

    bad = runner.invoke(app, ["catalog", str(catalog), "--out", str(tmp_path / "s.parquet"),
                              "--cache-max-size", "lots"])
    assert bad.exit_code == 2 and "--cache-max-size" in bad.output and "not a size" in bad.output
    monkeypatch.setenv("SCORER_CACHE_MAX_SIZE", "huge")
    bad = runner.invoke(app, ["catalog", str(catalog), "--out", str(tmp_path / "s.parquet")])
    assert bad.exit_code == 2 and "SCORER_CACHE_MAX_SIZE" in bad.output


def test_small_covers_keep_the_folder_under_the_bound_as_du_counts_it(small_cdn, tmp_path):
    """Issue 26: 200 covers of 1-4 kB, 0.5 MB together, under a 250 kB bound. Each takes a whole block, its index
    entry another, and the fan-out folders theirs: counted by bytes they would fit; counted as ``du`` does they
    do not, and the folder stays under the bound after every cover."""
    bound = 250_000
    cache = CoverCache(tmp_path / "covers", max_bytes=bound)
    peak = 0
    with CoverFetcher(FetchOptions(**FAST, concurrency=4), cache=cache) as fetcher:
        for _, got in fetcher.stream(small_cdn.urls, lambda u: u, window=4):
            assert isinstance(got, bytes)
            peak = max(peak, du(tmp_path / "covers"))
    assert sum(len(small_cdn.body(u.rsplit("/", 1)[1])[0]) for u in small_cdn.urls) > 2 * bound
    assert peak <= bound and cache.pruned.files > 0
    usage = cache.usage()
    assert usage.disk == du(tmp_path / "covers")  # what the cache counts is what du counts
    assert usage.bytes < usage.disk / 2  # small files: the disk spends more than twice their bytes
    assert int((tmp_path / "covers" / LEDGER).read_text()) == usage.disk  # the running total kept exact


def test_small_covers_through_the_cli(small_cdn, tmp_path, monkeypatch):
    """``scorer catalog --cache-max-size 200kB`` over the small covers: ``du`` of the folder is under the bound,
    and ``scorer cache info`` says what ``du`` says within 5%."""
    monkeypatch.setenv("SCORER_CACHE_DIR", str(tmp_path / "cache"))
    catalog = tmp_path / "c.csv"
    catalog.write_text("cover_url\n" + "".join(f"{u}\n" for u in small_cdn.urls[:80]))
    runner = CliRunner()
    result = runner.invoke(app, ["catalog", str(catalog), "--out", str(tmp_path / "s.parquet"),
                                 "--allow-private-hosts", "--cache-max-size", "200kB"])
    assert result.exit_code == 0, result.output
    assert du(tmp_path / "cache" / "covers") <= 200_000
    info = json.loads(runner.invoke(app, ["cache", "info", "--json"]).output)
    covers, everything = du(tmp_path / "cache" / "covers"), du(tmp_path / "cache")
    assert abs(info["parts"]["covers"]["bytes"] - covers) <= 0.05 * covers
    assert abs(info["bytes"] - everything) <= 0.05 * everything


WRITER = """
import sys
from pathlib import Path
from scorer.fetch.cache import CoverCache
root, bound, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cache = CoverCache(root, max_bytes=bound)
for i in range(80):
    size = 500 + (seed * 7919 + i * 104_729) % 6_000
    cache.store(f"https://cdn.example/{seed}/{i}.jpg", bytes([seed, i % 256]) * (size // 2))
"""


def test_runs_sharing_a_cache_keep_it_under_the_bound_together(tmp_path):
    """Three processes write 80 small covers each into one cache with a 150 kB bound: each one alone would keep
    it under the bound; together they do too (one ledger under one lock), and the ledger is what du says."""
    bound = 150_000
    runs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "covers"), str(bound), str(seed)])
            for seed in (1, 2, 3)]
    assert [run.wait(timeout=120) for run in runs] == [0, 0, 0]
    assert du(tmp_path / "covers") <= bound
    assert int((tmp_path / "covers" / LEDGER).read_text()) == du(tmp_path / "covers")
    assert CoverCache(tmp_path / "covers").usage().disk == du(tmp_path / "covers")


def test_a_killed_runs_temporaries_are_counted_then_cleaned(tmp_path):
    """A run killed while writing leaves ``.<name>.<random>.tmp``: ``cache info`` counts it (du does), the next
    prune deletes it; a cache without a ledger (from before it, or cleared by hand) is walked again."""
    cache = CoverCache(tmp_path, max_bytes=10**9)
    for i in range(5):
        cache.store(f"https://cdn.example/{i}.jpg", bytes([i]) * 3_000)
    folder = cache.blob_path(hashlib.sha256(bytes([0]) * 3_000).hexdigest()).parent
    leftover = folder / ".abc.k1ll3d.tmp"
    leftover.write_bytes(b"x" * 50_000)
    (tmp_path / LEDGER).unlink()
    assert cache.usage().disk == du(tmp_path) and cache.usage().files == 10  # counted on the disk, not a cover
    cache.store("https://cdn.example/5.jpg", bytes([5]) * 3_000)  # no ledger: walks, and cleans under the lock
    assert not leftover.exists()
    assert int((tmp_path / LEDGER).read_text()) == du(tmp_path)
    leftover.write_bytes(b"x" * 50_000)
    cache.prune(10**9)  # a prune that deletes no cover still deletes a killed run's temporaries
    assert not leftover.exists() and cache.usage().files == 12
