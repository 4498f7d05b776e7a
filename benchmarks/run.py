"""The benchmark suite: every case in one run, written as JSON and a Markdown table.

    python -m benchmarks.run --quick     # < 10 min on 2 cores
    python -m benchmarks.run --full      # more repetitions, the whole link file, 100k-row catalog

Cases (each states its inputs and repetitions; rates are medians with min–max):
1. model-only: the ONNX featurizer (fp32 and int8) on pre-decoded covers, batch 1/8/16/32/64,
   then the session options one at a time (optimisation level, spinning, arena, IO binding);
2. end-to-end from local files: ``scorer catalog`` over real covers, steady-state covers/s and
   its ratio to model-only at the same precision and batch;
3. fetch + decode, and fetch + score, from a loopback CDN (0 and 50 ms latency) serving real
   covers at the Bandcamp link file's URLs, beside the peer ``img2dataset`` on the same URLs;
4. scaling: nightly catalogs of 1k/10k(/100k) rows, wall time and peak RSS;
5. start-up: ``scorer --help`` wall time.
The machine is shared and noisy: compare ratios within one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from scorer.featurize.cnn import default_threads

from . import peer
from .common import COVERS, LINKS, REPO, cover_files, in_subprocess, spread
from .fetch_links import score_links, start_cdn
from .model import model_only, tuning
from .nightly import scorer_catalog, write_catalog

PROFILES = {
    "quick": {"reps": 3, "e2e_covers": 1000, "links": 10_000, "score_links": 2000, "net_reps": 1,
              "scaling": [1000, 10_000], "tuning": True},
    "full": {"reps": 5, "e2e_covers": 4000, "links": 10_000, "score_links": 10_000, "net_reps": 3,
             "scaling": [1000, 10_000, 100_000], "tuning": True},
}
BATCHES = [1, 8, 16, 32, 64]  # 64: scorer's CPU default (run as slices of 4 covers)
PRECISIONS = ["fp32", "int8"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def end_to_end(n: int, reps: int, precision: str, tmp: Path) -> dict:
    """``scorer catalog`` over ``n`` local covers; steady-state rate from the run's own summary.

    Each repetition measures the model-only ceiling (same precision, scorer's batch) right before
    the run, so that the ratio compares figures taken under the same machine load. ``cpu_cores_busy``
    is the run's CPU time over its wall time: near the core count means decode and inference overlap
    and the run is CPU-bound.
    """
    from scorer.featurize import OnnxFeaturizer
    from scorer.featurize.cnn import CPU, PREFERRED_BATCH

    from .model import featurizer_path, images, throughput

    src = tmp / "local.csv"
    with open(src, "w", newline="") as f:
        csv.writer(f).writerows([["cover_url"], *([str(p)] for p in cover_files(n))])
    featurizer, pixels, batch = OnnxFeaturizer(featurizer_path(precision)), images(256), PREFERRED_BATCH[CPU]
    rates, ceilings, ratios, walls, busy, rss = [], [], [], [], [], []
    for _ in range(reps):
        ceilings.append(throughput(featurizer, pixels, batch, 1)["median"])
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "scorer.cli", "catalog", str(src), "--out", str(tmp / "e2e.parquet"),
                            "--json", "--no-cache", "--precision", precision], capture_output=True, text=True,
                           cwd=REPO, check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / walls[-1])
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        if summary["scored"] != n:
            raise RuntimeError(f"end-to-end run scored {summary['scored']} of {n}: {summary}")
        rates.append(n / summary["seconds"])
        ratios.append(rates[-1] / ceilings[-1])
        rss.append(summary["peak_rss_mb"])
    return {"precision": precision, "covers": n, "batch": batch, "covers_per_s": spread(rates),
            "model_only_same_batch": spread(ceilings), "ratio_to_model_only": spread(ratios, 2),
            "cpu_cores_busy": spread(busy, 2), "wall_s": spread(walls), "peak_rss_mb": max(rss)}


def network(profile: dict, tmp: Path) -> list[dict]:
    """Ours (fetch+decode, fetch+score) and img2dataset against the same loopback CDN, per latency."""
    peer.ensure_env()
    processes = default_threads()  # img2dataset's best setting here: one process per core
    rows = []
    for latency in (0, 50):
        proc, base = start_cdn(COVERS, latency)
        try:
            lines = LINKS.read_text().replace("http://f1.bcbits.com", base).splitlines()
            links = tmp / "links.tsv"
            links.write_text("\n".join(lines[:profile["links"]]) + "\n")
            few = tmp / "links-score.tsv"
            few.write_text("\n".join(lines[:profile["score_links"]]) + "\n")
            row: dict = {"latency_ms": latency, "links": profile["links"]}
            log(f"fetch+decode, {latency} ms")
            ours = [in_subprocess("benchmarks.fetch_decode", str(links)) for _ in range(profile["net_reps"])]
            row["fetch_decode"] = {"covers_per_s": spread([o["covers_per_s"] for o in ours]),
                                   "ok": min(o["ok"] for o in ours), "peak_rss_mb": max(o["peak_rss_mb"] for o in ours)}
            # every URL is on one host: the default 16 connections per host caps us at 16 / latency;
            # img2dataset has no per-host limit, so also run ours with all 64 on that host
            log(f"fetch+decode, 64 per host, {latency} ms")
            wide = [in_subprocess("benchmarks.fetch_decode", str(links), "--per-host", "64")
                    for _ in range(profile["net_reps"])]
            row["fetch_decode_64_per_host"] = {"covers_per_s": spread([o["covers_per_s"] for o in wide]),
                                               "ok": min(o["ok"] for o in wide)}
            log(f"img2dataset, {latency} ms")
            theirs = [peer.run_img2dataset([line.split("\t")[0] for line in lines[:profile["links"]]],
                                           tmp / "img2dataset", threads=64 // processes, processes=processes)
                      for _ in range(profile["net_reps"])]
            # its rate without its ~5 s of process start-up, as ours is timed from the first request
            row["img2dataset"] = {"images_per_s": spread([t["ok"] / t["shard_s"] for t in theirs]),
                                  "images_per_s_with_startup": spread([t["images_per_s"] for t in theirs]),
                                  "ok": min(t["ok"] for t in theirs), "tool": theirs[0]["tool"],
                                  "processes": processes, "threads": 64 // processes,
                                  "startup_s": spread([t["startup_s"] for t in theirs], 2),
                                  "peak_rss_mb": max(t["peak_tree_rss_mb"] for t in theirs)}
            log(f"scorer links ({profile['score_links']} lines), {latency} ms")
            scored = score_links(few, tmp / "links.parquet", [])
            row["fetch_score"] = {"links": profile["score_links"], "covers_per_s": scored["covers_per_s"],
                                  "scored": scored["scored"], "peak_rss_mb": scored["peak_rss_mb"]}
            peer_rate = row["img2dataset"]["images_per_s"]["median"]
            row["ratio_fetch_decode_to_peer"] = round(row["fetch_decode"]["covers_per_s"]["median"] / peer_rate, 2)
            row["ratio_fetch_decode_64_per_host_to_peer"] = round(
                row["fetch_decode_64_per_host"]["covers_per_s"]["median"] / peer_rate, 2)
            row["ratio_fetch_score_to_peer"] = round(scored["covers_per_s"] / peer_rate, 2)
            rows.append(row)
        finally:
            proc.terminate()
            proc.wait(10)
    return rows


def scaling(sizes: list[int], tmp: Path) -> list[dict]:
    """Nightly catalogs (every cover shared by 5 rows, as tracks share an album) into a dataset."""
    proc, base = start_cdn(COVERS, 0)
    rows = []
    try:
        for n in sizes:
            log(f"scaling: {n} rows")
            src, out = tmp / f"catalog-{n}.csv", tmp / f"scaled-{n}"
            write_catalog(src, n, max(1, n // 5), base)
            result = scorer_catalog(src, out, ["--no-cache"])
            rows.append({"rows": n, "distinct_covers": max(1, n // 5), "wall_s": result["wall_s"],
                         "s_per_1k_rows": round(result["wall_s"] / n * 1000, 2), "peak_rss_mb": result["peak_rss_mb"],
                         "scored": result["scored"]})
    finally:
        proc.terminate()
        proc.wait(10)
    return rows


def startup(reps: int) -> dict:
    walls = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "scorer.cli", "--help"], capture_output=True, check=True, cwd=REPO)
        walls.append(time.perf_counter() - start)
    return {"scorer --help (s)": spread(walls[1:], 3)}


def environment() -> dict:
    import onnxruntime as ort

    from scorer.featurize.cnn import available_providers, default_threads

    return {"python": platform.python_version(), "onnxruntime": ort.__version__, "cores": default_threads(),
            "cpu": _cpu_name(), "providers": available_providers(),
            "gpu": "CUDA" in " ".join(available_providers())}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="profile")
    mode.add_argument("--full", action="store_const", const="full", dest="profile")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--only", nargs="+", choices=["model", "e2e", "network", "scaling", "startup"])
    args = ap.parse_args()
    profile_name = args.profile or "quick"
    profile = PROFILES[profile_name]
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    wanted = set(args.only or ["model", "e2e", "network", "scaling", "startup"])
    started = time.perf_counter()
    results: dict = {"profile": profile_name, "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "environment": environment(), "settings": profile}
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            _cases(Path(tmp_name), wanted, profile, results)
    finally:  # what was measured is kept even when a later case fails
        results["seconds"] = round(time.perf_counter() - started, 1)
        args.out.mkdir(parents=True, exist_ok=True)
        _write(args.out / f"{profile_name}.json", json.dumps(results, indent=2) + "\n")
        table = markdown(results)
        _write(args.out / f"{profile_name}.md", table)
        print(table)


def _cases(tmp: Path, wanted: set[str], profile: dict, results: dict) -> None:
    if "startup" in wanted:
        log("start-up")
        results["startup"] = startup(5)
    if "model" in wanted:
        log("model-only")
        results["model_only"] = model_only(PRECISIONS, BATCHES, profile["reps"], 256)
        if profile["tuning"]:
            results["tuning"] = [r for p in PRECISIONS for r in tuning(p, 16, profile["reps"], 256)]
    if "e2e" in wanted:
        results["end_to_end"] = []
        for precision in PRECISIONS:
            log(f"end-to-end from local files, {precision}")
            results["end_to_end"].append(end_to_end(profile["e2e_covers"], profile["reps"], precision, tmp))
    if "network" in wanted:
        results["network"] = network(profile, tmp)
    if "scaling" in wanted:
        results["scaling"] = scaling(profile["scaling"], tmp)


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _rate(s: dict) -> str:
    return f"{s['median']:g} ({s['min']:g}–{s['max']:g})"


def markdown(r: dict) -> str:
    env = r["environment"]
    out = [f"## Benchmarks ({r['profile']}, {r['started_at'][:10]}, {env['cores']} cores, {env['cpu']}, "
           f"onnxruntime {env['onnxruntime']}, providers {', '.join(env['providers'])}; {r['seconds']:.0f} s)", ""]
    if "model_only" in r:
        out += ["**Model only** (featurizer on pre-decoded covers; img/s, median (min–max) of "
                f"{r['settings']['reps']} reps of 256 covers)", "",
                "| batch | " + " | ".join(PRECISIONS) + " | int8 / fp32 |", "|---|---|---|---|"]
        for b in sorted({x["batch"] for x in r["model_only"]}):
            cells = {x["precision"]: x["img_per_s"] for x in r["model_only"] if x["batch"] == b}
            if all(p in cells for p in PRECISIONS):
                out.append(f"| {b} | {_rate(cells['fp32'])} | {_rate(cells['int8'])} | "
                           f"{cells['int8']['median'] / cells['fp32']['median']:.2f}× |")
        out.append("")
    if "tuning" in r:
        out += ["**Session options** (batch 16, img/s)", "", "| variant | precision | img/s |", "|---|---|---|"]
        out += [f"| {x['variant']} | {x['precision']} | {_rate(x['img_per_s'])} |" for x in r["tuning"]]
        out.append("")
    if "end_to_end" in r:
        out += ["**End to end from local files** (`scorer catalog` over real covers, default head; steady-state "
                "covers/s from the run's summary; model-only measured right before each run, same precision and "
                "batch; CPU busy = the run's CPU seconds / wall seconds)", "",
                "| precision | covers | covers/s | model-only img/s | ratio | CPU cores busy | wall s | peak RSS MB |",
                "|---|---|---|---|---|---|---|---|"]
        out += [f"| {x['precision']} | {x['covers']} | {_rate(x['covers_per_s'])} | "
                f"{_rate(x['model_only_same_batch'])} | {_rate(x['ratio_to_model_only'])} | "
                f"{_rate(x['cpu_cores_busy'])} | {_rate(x['wall_s'])} | {x['peak_rss_mb']:g} |"
                for x in r["end_to_end"]]
        out.append("")
    if "network" in r:
        i2d = r["network"][0]["img2dataset"]
        out += [f"**Loopback CDN** (the {r['network'][0]['links']:,} Bandcamp link-file URLs → real covers served by a "
                f"loopback CDN process on the same cores; covers/s). Ours: 64 requests in flight, 16 per host, "
                f"one process. {i2d['tool']}: {i2d['processes']} processes × {i2d['threads']} threads, resize to "
                f"224 bilinear, files output; its rate excludes its process start-up "
                f"({i2d['startup_s']['median']:g} s). RSS: ours is one process, img2dataset's is all its processes "
                "summed.", "",
                "| latency | fetch+decode (16 per host, default) | fetch+decode (64 per host) | img2dataset | "
                "ours / img2dataset (16; 64 per host) | fetch+score (lines) | "
                "fetch+score / img2dataset | RSS MB: ours fetch / img2dataset / ours score |",
                "|---|---|---|---|---|---|---|---|"]
        for x in r["network"]:
            out.append(f"| {x['latency_ms']:g} ms | {_rate(x['fetch_decode']['covers_per_s'])} | "
                       f"{_rate(x['fetch_decode_64_per_host']['covers_per_s'])} | "
                       f"{_rate(x['img2dataset']['images_per_s'])} | {x['ratio_fetch_decode_to_peer']:.2f}; "
                       f"{x['ratio_fetch_decode_64_per_host_to_peer']:.2f} | "
                       f"{x['fetch_score']['covers_per_s']:g} ({x['fetch_score']['links']}) | "
                       f"{x['ratio_fetch_score_to_peer']:.2f} | {x['fetch_decode']['peak_rss_mb']:g} / "
                       f"{x['img2dataset']['peak_rss_mb']:g} / {x['fetch_score']['peak_rss_mb']:g} |")
        out.append("")
    if "scaling" in r:
        out += ["**Scaling** (nightly `scorer catalog` into a dataset; 5 rows per cover, loopback CDN)", "",
                "| rows | distinct covers | wall s | s per 1k rows | peak RSS MB |", "|---|---|---|---|---|"]
        out += [f"| {x['rows']:,} | {x['distinct_covers']:,} | {x['wall_s']:g} | {x['s_per_1k_rows']:g} | "
                f"{x['peak_rss_mb']:g} |" for x in r["scaling"]]
        out.append("")
    if "startup" in r:
        out += [f"**Start-up**: `scorer --help` {_rate(r['startup']['scorer --help (s)'])} s", ""]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
