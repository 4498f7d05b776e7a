"""The cover cache is bounded: least recently used covers go first, a run never takes it past its bound,
and ``scorer cache info|prune|clear`` report and manage it (issue 16)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from scorer.cli import app
from scorer.fetch import CoverFetcher, FetchOptions
from scorer.fetch.cache import CoverCache, parse_size

FAST = {"allow_private_hosts": True, "retries": 0}


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
            peak = max(peak, on_disk(tmp_path / "covers")[1])
    assert peak <= bound
    assert cache.pruned.files > 0  # it did have to prune: the covers are several times the bound
    served = {u: cdn.body(u.rsplit("/", 1)[1])[0] for u in urls}
    assert len(set(served.values())) * 8_000 > bound  # (the covers are bigger than the bound together)


def test_least_recently_used_go_first(tmp_path):
    cache = CoverCache(tmp_path, max_bytes=None)
    blobs = {name: os.urandom(10_000) for name in "abcd"}
    for i, name in enumerate("abc"):
        cache.store(f"https://cdn.example/{name}.jpg", blobs[name])
        for path in (cache.blob_path(cache.lookup(f"https://cdn.example/{name}.jpg")[0].sha256),
                     cache._entry_path(f"https://cdn.example/{name}.jpg")):
            os.utime(path, (1_000_000 + i, 1_000_000 + i))  # stored long ago, a before b before c
    assert cache.lookup("https://cdn.example/a.jpg") is not None  # a is used now
    cache.max_bytes = 40_000  # 3 covers and their entries (~31 kB) + d is over: a prune down to 80%, less d
    cache.store("https://cdn.example/d.jpg", blobs["d"])  # b, the least recently used, goes; not a
    kept = {name for name in "abcd" if cache.lookup(f"https://cdn.example/{name}.jpg") is not None}
    assert kept == {"a", "c", "d"}
    assert on_disk(tmp_path)[1] <= 40_000


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
    assert (info["parts"]["covers"]["files"], info["parts"]["covers"]["bytes"]) == (files, size)
    assert info["parts"]["finetune"]["bytes"] == 1000 and info["root"] == str(tmp_path / "cache")

    result = runner.invoke(app, ["cache", "prune", "--max-size", f"{size // 2}B"])
    assert result.exit_code == 0, result.output
    assert 0 < on_disk(tmp_path / "cache" / "covers")[1] <= size // 2 and "pruned" in result.output

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
