"""The Bandcamp link file (10,000 lines) fetched from a loopback CDN, with and without server latency.

For each latency: fetch+decode covers/s (the engine's ``decoded`` stream, no model), then
``scorer links`` end to end (fetch, decode, score, Parquet) as a subprocess with its wall time
and peak RSS. The CDN runs in its own process and serves real covers from ``--covers``.

    python -m benchmarks.fetch_links --latency-ms 0 50
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import REPO, SHARED
from .fetch_decode import fetch_decode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(proc: subprocess.Popen, port: int) -> str | None:
    """The server's base URL once ``port`` accepts connections (up to about 30 s); ``None`` (and ``proc``
    killed) if it never does."""
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    return None


def start_cdn(covers: Path, latency_ms: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.cdn", "--covers", str(covers), "--port", str(port),
                             "--latency-ms", str(latency_ms)], cwd=REPO)
    if (base := listening(proc, port)) is None:
        raise RuntimeError("the loopback CDN did not start")
    return proc, base


def score_links(links: Path, out: Path, extra: list[str]) -> dict:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "scorer.cli", "links", str(links), "--out", str(out), "--json",
                        "--allow-private-hosts", "--no-cache", *extra], check=False, capture_output=True, text=True,
                       cwd=REPO)
    seconds = time.perf_counter() - start
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    return {"rows": summary["rows"], "scored": summary["scored"], "wall_s": round(seconds, 1),
            "covers_per_s": round(summary["rows"] / seconds, 1), "peak_rss_mb": summary["peak_rss_mb"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0, 50])
    parser.add_argument("--links", type=Path, default=SHARED / "bandcamp" / "dataset-links.tsv")
    parser.add_argument("--covers", type=Path, default=SHARED / "covers-5genre")
    parser.add_argument("--concurrency", type=int, default=64, help="fetch-only concurrency (scorer's default)")
    parser.add_argument("--no-score", action="store_true", help="fetch+decode only")
    parser.add_argument("scorer_args", nargs="*", help="extra arguments for scorer links (after --)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for latency in args.latency_ms:
            proc, base = start_cdn(args.covers, latency)
            try:
                links = Path(tmp) / "links.tsv"
                links.write_text(args.links.read_text().replace("http://f1.bcbits.com", base))
                row = {"latency_ms": latency, "fetch_decode": fetch_decode(links, args.concurrency)}
                if not args.no_score:
                    row["scorer_links"] = score_links(links, Path(tmp) / "out.parquet", args.scorer_args)
                results.append(row)
                print(json.dumps(row), flush=True)
            finally:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
