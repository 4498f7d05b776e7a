"""The peer tool img2dataset 1.47.0 downloading and resizing the Bandcamp link file from the loopback CDN.

img2dataset lives in its own virtual environment (``benchmarks/.envs/img2dataset``, made on first use), never
in the project's. For each latency the CDN starts, the link file's URLs are rewritten to it, and img2dataset
runs as a subprocess; one JSON line per latency gives its wall time, successes and peak RSS.

    python -m benchmarks.peer --latency-ms 0 50 --processes 1 --threads 64
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .common import REPO, SHARED
from .fetch_links import start_cdn

PEER = "img2dataset==1.47.0"
ENV = REPO / "benchmarks" / ".envs" / "img2dataset"
TIME = Path("/usr/bin/time")
RUN = "import json, sys; from img2dataset import download; download(**json.loads(sys.argv[1]))"


def ensure_env(root: Path | None = None) -> Path:
    """The python of a virtual environment holding img2dataset, made (once) at ``root``."""
    env = root or ENV
    python, marker = env / "bin" / "python", env / ".installed"
    if python.exists() and marker.exists() and marker.read_text() == PEER:
        return python
    print(f"peer: installing {PEER} into {env} (once, about a minute)", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    r = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", PEER],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"pip install {PEER} failed:\n{tail}")
    marker.write_text(PEER)
    return python


def tree_rss_mb(root: int) -> float:
    """The summed RSS of ``root`` and all its descendants, from /proc (0 when it has gone)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    pages = 0
    for pid in tree:
        try:
            pages += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_img2dataset(urls: list[str], workdir: Path, threads: int, processes: int, size: int = 224) -> dict:
    """Download and resize ``urls`` with img2dataset under ``workdir``; wall time, successes, memory."""
    python = ensure_env()
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "img2dataset"
    shutil.rmtree(out, ignore_errors=True)  # fresh; incremental_mode="overwrite" would delete its own _tmp
    url_list = workdir / "urls.txt"
    url_list.write_text("\n".join(urls) + "\n")
    options = {
        "url_list": str(url_list), "input_format": "txt", "output_folder": str(out), "output_format": "files",
        # Covers are square (300x300), so keep_ratio (shorter side to `size`, no crop, no padding) gives
        # size x size as our decode does; the default "border" would too, but pads non-square ones.
        # Bilinear both ways, as ours (img2dataset defaults to area down, lanczos up).
        "image_size": size, "resize_mode": "keep_ratio", "downscale_interpolation": "bilinear",
        "upscale_interpolation": "bilinear", "encode_format": "jpg", "encode_quality": 95,
        # one shard per process: every process works, and there is one thread-pool drain per process
        "processes_count": processes, "thread_count": threads,
        "number_sample_per_shard": max(1, math.ceil(len(urls) / processes)),
        # ours neither reads EXIF nor hashes; no retries, no shard reruns, no wandb
        "extract_exif": False, "compute_hash": None, "retries": 0, "max_shard_retry": 0, "timeout": 10,
        "enable_wandb": False,
    }
    rss_file = workdir / "maxrss.txt"
    command = [str(python), "-c", RUN, json.dumps(options)]
    if TIME.exists():
        command = [str(TIME), "-f", "%M", "-o", str(rss_file), *command]
    env = {**os.environ, "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}
    peak_tree = 0.0
    start_epoch, start = time.time(), time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    sampler_done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not sampler_done.wait(0.25):
            peak_tree = max(peak_tree, tree_rss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    log, _ = proc.communicate()
    wall = time.perf_counter() - start
    sampler_done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError("img2dataset failed:\n" + "\n".join(log.strip().splitlines()[-20:]))
    stats = [json.loads(p.read_text()) for p in sorted(out.glob("*_stats.json"))]
    ok = sum(s["successes"] for s in stats)
    statuses: dict[str, int] = {}
    for s in stats:
        for status, n in s["status_dict"].items():
            statuses[status] = statuses.get(status, 0) + n
    row = {"tool": PEER.replace("==", " "), "rows": len(urls), "ok": ok, "wall_s": round(wall, 2),
           "images_per_s": round(ok / wall, 1), "processes": processes, "threads": threads, "shards": len(stats)}
    if stats:  # spawn + imports + sharding before the first shard starts; shard time from first start to last end
        row["startup_s"] = round(min(s["start_time"] for s in stats) - start_epoch, 2)
        row["shard_s"] = round(max(s["end_time"] for s in stats) - min(s["start_time"] for s in stats), 2)
    if rss_file.exists():  # /usr/bin/time's %M: the largest single process of the tree, in KiB
        row["peak_rss_mb"] = round(int(rss_file.read_text().split()[-1]) / 1024, 1)
    row["peak_tree_rss_mb"] = round(peak_tree, 1)  # sampled every 0.25 s, all processes summed
    if ok < len(urls):
        row["statuses"] = dict(sorted(statuses.items(), key=lambda kv: -kv[1])[:5])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0, 50])
    parser.add_argument("--links", type=Path, default=SHARED / "bandcamp" / "dataset-links.tsv")
    parser.add_argument("--covers", type=Path, default=SHARED / "covers-5genre")
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--limit", type=int, help="only the first N links")
    args = parser.parse_args()
    ensure_env()
    lines = args.links.read_text().splitlines()[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        for latency in args.latency_ms:
            proc, base = start_cdn(args.covers, latency)
            try:
                urls = [line.split("\t", 1)[0].replace("http://f1.bcbits.com", base) for line in lines]
                row = run_img2dataset(urls, Path(tmp), args.threads, args.processes)
                print(json.dumps({"latency_ms": latency, **row}), flush=True)
            finally:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
