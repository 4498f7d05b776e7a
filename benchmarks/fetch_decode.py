"""Fetch + decode only (no model) of a link file whose URLs already point at a server.

Runs in its own process so that its peak RSS is its own; prints one JSON line.

    python -m benchmarks.fetch_decode LINKS.tsv [--concurrency 64] [--per-host 16]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from scorer.scoring import peak_rss_mb


def fetch_decode(links: Path, concurrency: int = 64, per_host: int = 16) -> dict:
    """The engine's ``decoded`` stream over every line: covers/s and how many decoded."""
    from scorer.engine import decoded
    from scorer.fetch import CoverFetcher, FetchOptions
    from scorer.sources import read_links

    items = read_links(links)
    start = time.perf_counter()
    ok = 0
    with CoverFetcher(FetchOptions(allow_private_hosts=True, cache=False, concurrency=concurrency,
                                   per_host=per_host)) as fetcher:
        for outcome in decoded(items, lambda x: x.url, fetcher):
            ok += outcome.error is None
    seconds = time.perf_counter() - start
    return {"rows": len(items), "ok": ok, "seconds": round(seconds, 2),
            "covers_per_s": round(len(items) / seconds, 1), "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("links", type=Path)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--per-host", type=int, default=16)
    args = ap.parse_args()
    print(json.dumps(fetch_decode(args.links, args.concurrency, args.per_host)))


if __name__ == "__main__":
    main()
