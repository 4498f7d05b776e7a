"""The cover fetcher against a real loopback CDN that misbehaves in every way covers CDNs do.

Nothing of scorer is faked: ``CoverFetcher`` talks HTTP to an aiohttp.web server on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import itertools
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from scorer.errors import STATUS_CODES, RowError
from scorer.fetch import CoverCache, CoverFetcher, FetchOptions
from scorer.fetch.cache import FOREVER, freshness
from scorer.fetch.http import retry_after
from scorer.fetch.safety import blocked_reason, check_url
from scorer.files import current_umask

#: Fast settings so that the misbehaving routes settle in seconds.
FAST = dict(allow_private_hosts=True, cache=False, deadline=2.0, read_timeout=1.0, connect_timeout=1.0,
            retries=2, backoff=0.01)


def fetch_all(urls: list[str], **options) -> list[bytes | RowError]:
    with CoverFetcher(FetchOptions(**{**FAST, **options})) as fetcher:
        got = list(fetcher.stream(urls, lambda u: u))
    assert [u for u, _ in got] == urls  # one result per input, in order
    return [r for _, r in got]


def status(result: bytes | RowError) -> str:
    return "ok" if isinstance(result, bytes) else result.code


#: route → the status it must end in
MISBEHAVING = {
    "/img/a.jpg": "ok",
    "/img/b.png": "ok",
    "/img/c.webp": "ok",
    "/bad/trickle": "timeout",
    "/bad/stall": "timeout",
    "/bad/reset": "fetch_error",
    "/bad/truncated.jpg": "ok",  # a complete response: the damage shows when decoding (decode_error)
    "/bad/html": "not_an_image",
    "/bad/bomb.png": "too_large",
    "/bad/flaky?k=x": "ok",
    "/bad/busy?k=x": "ok",
    "/bad/down": "http_5xx",
    "/bad/forbidden": "http_4xx",
    "/bad/gone": "http_404",
    "/bad/loop": "too_many_redirects",
    "/bad/metadata": "blocked_address",
    "/bad/moved": "ok",
    "/bad/huge": "too_large",
    "/bad/huge-chunked": "too_large",
    "/nothing-here": "http_404",
}


def test_every_misbehaving_route_ends_in_its_status(cdn):
    urls = [cdn.base + path for path in MISBEHAVING]
    before = cdn.hits.copy()
    results = fetch_all(urls)
    got = {path: status(r) for path, r in zip(MISBEHAVING, results)}
    assert got == MISBEHAVING
    for r in results:
        if isinstance(r, RowError):
            assert r.code in STATUS_CODES and r.message
    assert "169.254.169.254" in results[list(MISBEHAVING).index("/bad/metadata")].message
    assert (cdn.hits - before)["/bad/down"] >= 3  # 5xx: first try + 2 retries (a timeout on a busy machine adds one)


def test_what_is_retried_and_what_is_final(cdn):
    """Counted apart from the storm above, with timeouts a busy machine cannot hit: there a 1 s read timeout
    before a 403 arrived was (rightly) retried, and the count said 2."""
    paths = ["/bad/forbidden", "/bad/gone", "/bad/down", "/bad/flaky", "/bad/busy", "/bad/html", "/bad/bomb.png"]
    before = cdn.hits.copy()
    # a key of their own: the flaky and busy routes fail once per key
    fetch_all([f"{cdn.base}{p}?k=final" for p in paths], read_timeout=30.0, connect_timeout=30.0, deadline=60.0)
    hits = cdn.hits - before
    assert hits["/bad/forbidden"] == 1 and hits["/bad/gone"] == 1  # 4xx are final
    assert hits["/bad/down"] == 3  # 5xx: first try + 2 retries
    assert hits["/bad/flaky"] == 2 and hits["/bad/busy"] == 2
    assert hits["/bad/html"] == 1 and hits["/bad/bomb.png"] == 1  # garbage is not retried


def test_decoded_pipeline_statuses(cdn):
    """Through fetch *and* decode: the truncated JPEG becomes decode_error, good covers decode."""
    from scorer.engine import decoded

    urls = [cdn.base + p for p in ("/img/x.jpg", "/bad/truncated.jpg", "/bad/html", "/img/y.png")]
    with CoverFetcher(FetchOptions(**FAST)) as fetcher:
        outcomes = list(decoded(urls, lambda u: u, fetcher))
    assert [o.item for o in outcomes] == urls
    assert [o.error.code if o.error else "ok" for o in outcomes] == ["ok", "decode_error", "not_an_image", "ok"]
    assert outcomes[0].image.shape == (224, 224, 3)


def test_retry_after_is_honoured(cdn):
    before = cdn.hits.copy()
    start = time.monotonic()
    [r] = fetch_all([cdn.base + "/bad/busy?k=wait&after=2"])
    assert isinstance(r, bytes)
    assert time.monotonic() - start >= 1.9  # waited what the server asked, not the 10 ms backoff
    assert (cdn.hits - before)["/bad/busy"] == 2


def test_retry_after_over_the_limit_gives_up_at_once(cdn):
    before = cdn.hits.copy()
    [r] = fetch_all([cdn.base + "/bad/busy?k=long&after=3600"], max_retry_after=5)
    assert status(r) == "http_429" and "3600" in r.message
    assert (cdn.hits - before)["/bad/busy"] == 1  # no second try: it did not wait at all


def test_retry_after_parsing():
    assert retry_after("7") == 7.0
    assert retry_after(None) is None and retry_after("soon") is None
    in_a_minute = formatdate(time.time() + 60, usegmt=True)
    assert 55 < retry_after(in_a_minute) <= 60
    assert retry_after(formatdate(time.time() - 60, usegmt=True)) == 0.0


def test_loopback_and_private_refused_unless_allowed(cdn):
    localhost = cdn.base.replace("127.0.0.1", "localhost")
    urls = [cdn.base + "/img/a.jpg", localhost + "/img/a.jpg"]
    before = cdn.hits.copy()
    refused = fetch_all(urls, allow_private_hosts=False)
    assert [status(r) for r in refused] == ["blocked_address", "blocked_address"]
    assert "loopback" in refused[1].message and "resolves to" in refused[1].message  # checked after DNS
    assert cdn.hits == before  # not a single byte was sent
    assert [status(r) for r in fetch_all(urls)] == ["ok", "ok"]


@pytest.mark.parametrize(("ip", "allow", "blocked"), [
    ("169.254.169.254", True, True), ("fe80::1", True, True), ("::ffff:169.254.169.254", True, True),
    ("127.0.0.1", False, True), ("127.0.0.1", True, False), ("10.1.2.3", False, True), ("192.168.0.9", False, True),
    ("172.16.5.4", False, True), ("100.64.0.1", False, True), ("fd00::1", False, True), ("::1", False, True),
    ("0.0.0.0", True, True), ("224.0.0.1", True, True), ("93.184.215.14", False, False),
    ("2606:4700::1111", False, False),
])
def test_address_policy(ip, allow, blocked):
    assert (blocked_reason(ipaddress.ip_address(ip), allow) is not None) == blocked


@pytest.mark.parametrize(("url", "code"), [
    ("ftp://example.com/a.jpg", "bad_url"), ("gopher://x/1", "bad_url"), ("http:///a.jpg", "bad_url"),
    ("http://169.254.169.254/latest/meta-data/", "blocked_address"), ("http://[::1]:80/a", "blocked_address"),
])
def test_urls_refused_before_any_connection(url, code):
    with pytest.raises(RowError) as e:
        check_url(url, allow_private=False)
    assert e.value.code == code


def test_rows_without_urls_and_local_files(tmp_path, sample_covers):
    ok = sample_covers[0]
    refs = ["", "  ", str(ok), f"file://{ok}", str(tmp_path / "absent.jpg"), "s3://bucket/key.jpg", str(tmp_path)]
    with CoverFetcher(FetchOptions(**FAST)) as fetcher:
        got = [status(r) for _, r in fetcher.stream(refs, lambda r: r)]
    assert got == ["missing_url", "missing_url", "ok", "ok", "not_found", "bad_url", "unreadable"]


def test_stream_is_bounded(cdn):
    """The fetcher pulls at most ``window`` items ahead of the consumer: memory stays flat."""
    pulled = 0

    def endless():
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield f"{cdn.base}/img/{i}.jpg"

    with CoverFetcher(FetchOptions(**FAST)) as fetcher:
        stream = fetcher.stream(endless(), lambda u: u, window=32)
        for _ in range(10):
            next(stream)
        assert 32 <= pulled <= 32 + 10
        stream.close()


def test_one_request_for_many_rows_sharing_a_cover(cdn):
    """Rows that ask for a URL already in flight wait for that request instead of sending another."""
    url = cdn.base + "/bad/slow.jpg"  # answers after 0.5 s, so all 40 overlap
    before = cdn.hits.copy()
    results = fetch_all([url] * 40)
    assert all(isinstance(r, bytes) for r in results)
    assert (cdn.hits - before)["/bad/slow.jpg"] == 1


def test_cache_revalidates_instead_of_refetching(cdn, tmp_path):
    cache = CoverCache(tmp_path / "covers")
    urls = [f"{cdn.base}/img/cached-{i}.jpg" for i in range(5)]
    with CoverFetcher(FetchOptions(**{**FAST, "cache": True}), cache=cache) as fetcher:
        first = [r for _, r in fetcher.stream(urls, lambda u: u)]
    before = cdn.statuses.copy()
    with CoverFetcher(FetchOptions(**{**FAST, "cache": True}), cache=cache) as fetcher:
        second = [r for _, r in fetcher.stream(urls, lambda u: u)]
    assert first == second and all(isinstance(r, bytes) for r in first)
    served = cdn.statuses - before
    assert sum(n for (_, s), n in served.items() if s == 304) == 5  # ETag revalidation, no bodies
    assert sum(n for (_, s), n in served.items() if s == 200) == 0
    files = [p for p in (tmp_path / "covers").rglob("*") if p.is_file() and p.name not in (".prune.lock", ".usage")]
    assert len(files) == 10 and not [p for p in files if p.name.startswith(".")]  # 5 blobs, 5 entries; no temporaries
    assert {p.stat().st_mode & 0o777 for p in files} == {0o666 & ~current_umask()}  # the umask, not mkstemp's 0600


def test_cache_is_content_addressed_and_survives_damage(tmp_path):
    cache = CoverCache(tmp_path)
    e1 = cache.store("http://a/1.jpg", b"same bytes", etag='"x"')
    e2 = cache.store("http://b/2.jpg", b"same bytes")
    assert e1.sha256 == e2.sha256 and len(list((tmp_path / "blobs").rglob("*/*"))) == 1
    assert cache.lookup("http://a/1.jpg")[1] == b"same bytes"
    cache.blob_path(e1.sha256).write_bytes(b"bit rot")
    assert cache.lookup("http://a/1.jpg") is None  # a damaged blob is refetched, never served


def test_freshness_rules():
    now = 1000.0
    assert freshness("https://i.scdn.co/image/ab67616d0000b273deadbeef", None, now) == FOREVER
    assert freshness("https://example.com/a.jpg", "public, max-age=600", now) == 1600
    assert freshness("https://example.com/a.jpg", "max-age=600, no-cache", now) == 0
    assert freshness("https://example.com/a.jpg", "immutable", now) == FOREVER
    assert freshness("https://example.com/a.jpg", None, now) == 0


def test_status_codes_are_documented():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for code in STATUS_CODES:
        assert f"`{code}`" in readme, code


def test_catalog_over_every_misbehaving_route(cdn, tmp_path):
    """``scorer catalog`` end to end: the run finishes, rows out == rows in, each with its status."""
    import csv

    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from scorer.cli import app

    expected = {**MISBEHAVING, "/bad/truncated.jpg": "decode_error", "/bad/flaky?k=cli": "ok", "/bad/busy?k=cli": "ok"}
    del expected["/bad/flaky?k=x"], expected["/bad/busy?k=x"]
    src = tmp_path / "routes.csv"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["route", "cover_url"])
        w.writerows([route, cdn.base + route] for route in expected)
    out = tmp_path / "routes.parquet"
    result = CliRunner().invoke(app, ["catalog", str(src), "--out", str(out), "--allow-private-hosts",
                                      "--timeout", "2", "--retries", "2", "--no-cache"])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == len(expected)
    assert {r["route"]: r["status"] for r in rows} == expected
    assert all((r["status"] == "ok") == (r["genre"] is not None) for r in rows)


def test_a_fresh_cached_cover_is_not_asked_for_again(cdn, tmp_path):
    """Cache-Control: max-age from the server: within it a rerun sends no request at all; past it (max-age=0)
    the cover is revalidated."""
    cache = CoverCache(tmp_path / "covers")
    fresh = [f"{cdn.base}/img/fresh{i}.jpg?max_age=86400" for i in range(4)]
    stale = [f"{cdn.base}/img/stale{i}.jpg?max_age=0" for i in range(3)]
    for _ in range(2):
        with CoverFetcher(FetchOptions(**{**FAST, "cache": True}), cache=cache) as fetcher:
            before = cdn.statuses.copy()
            got = [r for _, r in fetcher.stream(fresh + stale, lambda u: u)]
        assert all(isinstance(r, bytes) for r in got)
    served = cdn.statuses - before  # the second run only
    assert sum(n for (path, _), n in served.items() if path.startswith("/img/fresh")) == 0
    assert sum(n for (path, s), n in served.items() if path.startswith("/img/stale") and s == 304) == 3
