"""How close end-to-end scoring comes to this machine's CPU limit, links against the two-pass pipeline, memory
at scale: every figure of issue 26's "last tenth of the speed", in one run.

    python -m benchmarks.speed                      # catalog: the 4,452 local covers, 3 repetitions
    python -m benchmarks.speed --covers 1000 --reps 1 --links --scaling
    python -m benchmarks.speed --repo ../before      # another checkout's code (a git worktree), same measurements

- **limit**: decode CPU per cover (read + ``decode_image``) and scoring CPU per cover (the model at its
  default precision and head, batches of 16, calibration and familiarity included), each on ONE thread in a
  subprocess of the measured tree, measured right before each end-to-end run; limit = cores / (decode +
  scoring seconds per cover).
- **end to end**: ``scorer catalog`` over the same covers (``--no-cache``), covers/s in steady state (the
  run's own summary: scoring time, without start-up and the final write) and over the whole run (wall time of
  the process, start-up and model load included), each over the limit; CPU cores busy; and the limit's CPU
  per cover over the run's (how much CPU the run spends beyond decoding and scoring; load-independent).
- ``--links``: ``scorer links`` from a static nginx on loopback (Debian ``nginx-light``) against the two-pass
  pipeline (img2dataset into files, then ``scorer catalog`` on them), and against local files (the catalog's
  whole-run rate on as many covers).
- ``--scaling``: peak RSS of nightly catalogs of 10,000 and 100,000 rows (2,000 distinct covers, from nginx).

Everything scorer runs in subprocesses with ``--repo``'s tree first on ``sys.path``, so a before/after pair is
two runs of this file. JSON and Markdown go to ``benchmarks/results/speed.*`` (``--out``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
BATCH = 16  # scorer's CPU batch
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def probe(listing: Path, sample: int) -> dict:
    """(In a subprocess of the measured tree.) One-thread decode and scoring CPU seconds per cover."""
    import numpy as np

    from scorer.decode import decode_image
    from scorer.model import Model

    paths = [Path(p) for p in listing.read_text().split("\n") if p][:sample]
    start = time.process_time()
    pixels = [decode_image(p.read_bytes()) for p in paths]
    decode_s = (time.process_time() - start) / len(paths)
    model = Model(threads=1)
    head = model.head(model.default_head)
    images = np.stack(pixels)
    model.predict_with_familiarity(images[:BATCH], head)  # warm-up: session, head and first-call costs
    start = time.process_time()
    for i in range(0, len(images), BATCH):
        model.predict_with_familiarity(images[i:i + BATCH], head)
    score_s = (time.process_time() - start) / len(images)
    return {"decode_ms": round(decode_s * 1000, 3), "score_ms": round(score_s * 1000, 3), "sample": len(paths),
            "precision": model.precision, "head": model.default_head}


def in_tree(repo: Path, args: list[str], one_thread: bool = False) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``python args`` with ``repo``'s code first on the path; the result, wall and CPU seconds."""
    env = {**os.environ, "PYTHONPATH": str(repo), **(ONE_THREAD if one_thread else {})}
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=repo, env=env, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r, wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def last_json(r: subprocess.CompletedProcess) -> dict:
    return json.loads(r.stdout.strip().splitlines()[-1])


def scorer_run(repo: Path, command: str, src: Path, out: Path, *extra: str) -> dict:
    """``scorer <command> src --out out --json --no-cache``: its summary, wall and CPU seconds."""
    r, wall, cpu = in_tree(repo, ["-m", "scorer.cli", command, str(src), "--out", str(out), "--json", "--no-cache",
                                  *extra])
    return {**last_json(r), "wall_s": wall, "cpu_s": cpu}


def spread(values: list[float], digits: int = 2) -> dict:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "reps": len(values)}


def catalog_case(repo: Path, covers: list[Path], reps: int, sample: int, cores: int, tmp: Path) -> dict:
    """Per repetition: the one-thread probe, then ``scorer catalog`` over the covers; ratios within the rep."""
    listing, src = tmp / "covers.txt", tmp / "local.csv"
    listing.write_text("\n".join(map(str, covers)) + "\n")
    with open(src, "w", newline="") as f:
        csv.writer(f).writerows([["cover_url"], *([str(p)] for p in covers)])
    n, reps_out = len(covers), []
    for rep in range(reps):
        r, _, _ = in_tree(repo, [str(HERE / "speed.py"), "--probe", str(listing), "--sample", str(sample)], True)
        p = last_json(r)
        limit = cores / ((p["decode_ms"] + p["score_ms"]) / 1000)
        run = scorer_run(repo, "catalog", src, tmp / "local.parquet")
        if run["scored"] != n:
            raise RuntimeError(f"the catalog run scored {run['scored']} of {n}")
        steady, whole = n / run["seconds"], n / run["wall_s"]
        reps_out.append({**p, "limit": round(limit, 1), "steady": round(steady, 1), "whole": round(whole, 1),
                         "steady_over_limit": round(steady / limit, 3), "whole_over_limit": round(whole / limit, 3),
                         "cores_busy": round(run["cpu_s"] / run["wall_s"], 2), "wall_s": round(run["wall_s"], 1),
                         "cpu_over_limit": round((p["decode_ms"] + p["score_ms"]) / (run["cpu_s"] / n * 1000), 3),
                         "cpu_ms_per_cover": round(run["cpu_s"] / n * 1000, 2), "peak_rss_mb": run["peak_rss_mb"]})
        log(f"catalog rep {rep + 1}: {reps_out[-1]}")
    keys = ("decode_ms", "score_ms", "limit", "steady", "whole", "steady_over_limit", "whole_over_limit",
            "cores_busy", "wall_s", "cpu_ms_per_cover", "cpu_over_limit", "peak_rss_mb")
    return {"covers": n, "reps": reps_out, **{k: spread([x[k] for x in reps_out], 3) for k in keys}}


NGINX_CONF = """worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  default_type image/jpeg;
  client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
  uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
  server {{ listen 127.0.0.1:{port}; root {root}/www; }}
}}
"""


def start_nginx(root: Path, names: list[str], covers: list[Path]) -> tuple[subprocess.Popen, str]:
    """A static nginx on loopback serving ``/img/<name>`` (each a real cover, round-robin)."""
    from .fetch_links import free_port, listening

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("--links and --scaling need nginx: apt-get install -y nginx-light")
    (root / "www" / "img").mkdir(parents=True, exist_ok=True)
    for folder in (root.parent, root, root / "www", root / "www" / "img"):  # nginx's workers run as nobody
        folder.chmod(0o755)
    (root / "tmp").mkdir(exist_ok=True)
    for i, name in enumerate(names):
        (root / "www" / "img" / name).symlink_to(covers[i % len(covers)])
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, port=port))
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(root), "-g", "daemon off;"])
    if (base := listening(proc, port)) is None:
        raise RuntimeError(f"nginx did not start: {(root / 'error.log').read_text()[-2000:]}")
    return proc, base


def links_case(repo: Path, covers: list[Path], n: int, local: dict, tmp: Path) -> dict:
    """``scorer links`` from nginx; img2dataset into files then ``scorer catalog`` on them; both wall times."""
    from . import peer
    from .common import LINKS

    lines = LINKS.read_text().splitlines()[:n]
    names = [line.split("\t")[0].rsplit("/", 1)[1] for line in lines]
    proc, base = start_nginx(tmp / "nginx", names, covers)
    try:
        links = tmp / "links.tsv"
        links.write_text("\n".join(line.replace("http://f1.bcbits.com", base) for line in lines) + "\n")
        ours = scorer_run(repo, "links", links, tmp / "links.parquet", "--allow-private-hosts")
        processes = _cores()  # img2dataset's best setting here: one process per core (benchmarks/run.py)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        theirs = peer.run_img2dataset([line.split("\t")[0] for line in links.read_text().splitlines()],
                                      tmp / "two-pass", threads=64 // processes, processes=processes)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        theirs_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    finally:
        proc.terminate()
        proc.wait(10)
    if ours["scored"] != n or theirs["ok"] != n:
        raise RuntimeError(f"of {n} links, scorer links scored {ours['scored']}, img2dataset fetched {theirs['ok']}")
    files = sorted((tmp / "two-pass" / "img2dataset").rglob("*.jpg"))
    src = tmp / "two-pass.csv"
    with open(src, "w", newline="") as f:
        csv.writer(f).writerows([["cover_url"], *([str(p)] for p in files)])
    second = scorer_run(repo, "catalog", src, tmp / "two-pass.parquet")
    two_pass = theirs["wall_s"] + second["wall_s"]
    links_rate, local_whole = n / ours["wall_s"], n / local["wall_s"]
    two_pass_cpu = theirs_cpu + second["cpu_s"]
    return {"links": n, "scored": ours["scored"], "links_wall_s": round(ours["wall_s"], 1),
            "links_covers_per_s": round(links_rate, 1), "links_cpu_s": round(ours["cpu_s"], 1),
            "img2dataset_wall_s": theirs["wall_s"], "img2dataset_ok": theirs["ok"],
            "catalog_on_files_wall_s": round(second["wall_s"], 1), "two_pass_wall_s": round(two_pass, 1),
            "links_over_two_pass": round(two_pass / ours["wall_s"], 3),
            "local_whole_covers_per_s": round(local_whole, 1),
            "links_over_local": round(links_rate / local_whole, 3),
            # CPU seconds do not depend on what else the machine runs: what the wall ratios would be if CPU-bound
            "two_pass_cpu_s": round(two_pass_cpu, 1), "local_cpu_s": round(local["cpu_s"], 1),
            "two_pass_cpu_over_links_cpu": round(two_pass_cpu / ours["cpu_s"], 3),
            "local_cpu_over_links_cpu": round(local["cpu_s"] / ours["cpu_s"], 3),
            "peak_rss_mb": ours["peak_rss_mb"]}


def scaling_case(repo: Path, covers: list[Path], sizes: list[int], distinct: int, tmp: Path) -> list[dict]:
    """Nightly catalogs (``distinct`` covers shared by the rows) into a dataset folder: wall and peak RSS."""
    from .nightly import write_catalog

    proc, base = start_nginx(tmp / "nginx-scaling", [f"c{i}.jpg" for i in range(distinct)], covers)
    rows = []
    try:
        for n in sizes:
            src = tmp / f"catalog-{n}.csv"
            write_catalog(src, n, distinct, base)  # rows point at {base}/img/c<i>.jpg
            run = scorer_run(repo, "catalog", src, tmp / f"scaled-{n}", "--allow-private-hosts")
            if run["scored"] != n:
                raise RuntimeError(f"the {n}-row catalog scored {run['scored']} rows: {run}")
            rows.append({"rows": n, "distinct_covers": distinct, "scored": run["scored"],
                         "wall_s": round(run["wall_s"], 1), "cpu_s": round(run["cpu_s"], 1),
                         "peak_rss_mb": run["peak_rss_mb"]})
            log(f"scaling {n}: {rows[-1]}")
    finally:
        proc.terminate()
        proc.wait(10)
    return rows


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def markdown(r: dict) -> str:
    out = [f"## Speed against the CPU limit ({r['started_at'][:16]}Z, {r['cores']} cores, load before "
           f"{r['load_before']}, tree {r['repo']} at {r['commit']})", ""]
    if "catalog" in r:
        c = r["catalog"]

        def cell(k: str) -> str:
            return f"{c[k]['median']:g} ({c[k]['min']:g}–{c[k]['max']:g})"

        out += [f"`scorer catalog`, {c['covers']:,} local covers, median (min–max) of {len(c['reps'])} reps; "
                "decode and scoring CPU per cover on one thread, measured right before each run", "",
                "| decode ms | scoring ms | limit covers/s | steady covers/s | over limit | whole run covers/s | "
                "over limit | cores busy | CPU ms per cover | limit's CPU / run's CPU | peak RSS MB |",
                "|---" * 11 + "|",
                "| " + " | ".join(cell(k) for k in ("decode_ms", "score_ms", "limit", "steady", "steady_over_limit",
                                                    "whole", "whole_over_limit", "cores_busy", "cpu_ms_per_cover",
                                                    "cpu_over_limit", "peak_rss_mb")) + " |", "",
                "On a machine other processes share, the wall-clock ratios measure the share this run got; the CPU "
                "ratio (one-thread decode + scoring CPU per cover over the whole run's CPU per cover, start-up "
                "included) does not depend on it.", ""]
    if "links" in r:
        x = r["links"]
        out += [f"`scorer links`, {x['links']:,} lines from nginx on loopback: {x['links_wall_s']:g} s "
                f"({x['links_covers_per_s']:g} covers/s). Two-pass: img2dataset {x['img2dataset_wall_s']:g} s + "
                f"`scorer catalog` on its files {x['catalog_on_files_wall_s']:g} s = {x['two_pass_wall_s']:g} s: "
                f"**{x['links_over_two_pass']:g}×**. Over local files (whole run, "
                f"{x['local_whole_covers_per_s']:g} covers/s): **{x['links_over_local']}**. CPU seconds (load-"
                f"independent): links {x['links_cpu_s']:g}, two-pass {x['two_pass_cpu_s']:g} "
                f"({x['two_pass_cpu_over_links_cpu']:g}×), local files {x['local_cpu_s']:g} "
                f"({x['local_cpu_over_links_cpu']:g} of links').", ""]
    if "scaling" in r:
        out += ["Nightly catalogs into a dataset folder (every cover shared by many rows, from nginx)", "",
                "| rows | distinct covers | wall s | CPU s | peak RSS MB |", "|---|---|---|---|---|"]
        out += [f"| {x['rows']:,} | {x['distinct_covers']:,} | {x['wall_s']:g} | {x.get('cpu_s', '')} | "
                f"{x['peak_rss_mb']:g} |" for x in r["scaling"]]
        out.append("")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probe", type=Path, help=argparse.SUPPRESS)  # the one-thread probe, in the measured tree
    ap.add_argument("--sample", type=int, default=1000, help="covers the one-thread probe measures (default 1000)")
    ap.add_argument("--covers", type=int, help="local covers end to end (default: all 4,452)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--links", action="store_true", help="also scorer links against two-pass and local files")
    ap.add_argument("--link-lines", type=int, default=10_000)
    ap.add_argument("--scaling", action="store_true", help="also peak RSS at 10,000 and 100,000 rows")
    ap.add_argument("--no-catalog", action="store_true")
    ap.add_argument("--repo", type=Path, default=HERE.parent, help="the checkout whose code is measured")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder for speed.json and speed.md")
    ap.add_argument("--name", default="speed")
    args = ap.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe, args.sample)))
        return
    from .common import cover_files

    repo = args.repo.resolve()
    covers = cover_files(args.covers or 4452)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    results: dict = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "repo": str(repo),
                     "commit": commit, "cores": _cores(), "load_before": round(os.getloadavg()[0], 2),
                     "note": "a shared machine: compare ratios within one run"}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if not args.no_catalog:
            results["catalog"] = catalog_case(repo, covers, args.reps, min(args.sample, len(covers)),
                                              results["cores"], tmp)
        if args.links:
            n = min(args.link_lines, 10_000)
            local = scorer_run(repo, "catalog", _local(tmp / "local-links", covers, n), tmp / "l.parquet")
            results["links"] = links_case(repo, covers, n, local, tmp)
            log(f"links: {results['links']}")
        if args.scaling:
            results["scaling"] = scaling_case(repo, covers, [10_000, 100_000], 2000, tmp)
    results["load_after"] = round(os.getloadavg()[0], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(results))
    print(markdown(results))


def _local(folder: Path, covers: list[Path], n: int) -> Path:
    """A catalog of ``n`` distinct local files (links to the covers, round-robin), as many as the link lines."""
    folder.mkdir()
    paths = [folder / f"{i}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        path.symlink_to(covers[i % len(covers)])
    with open(folder / "catalog.csv", "w", newline="") as f:
        csv.writer(f).writerows([["cover_url"], *([str(p)] for p in paths)])
    return folder / "catalog.csv"


if __name__ == "__main__":
    main()
