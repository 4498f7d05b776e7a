"""How fast ``scorer similar`` answers over a large index: 100,000 rows of real embeddings tiled with noise.

    python -m benchmarks.similar [--rows 100000] [--real 512] [--reps 3] [--out benchmarks/results/similar]

The index is a scored Parquet file as ``--embeddings`` writes it (``fixed_size_list<halffloat>[1280]``, zstd):
the shipped network's features of ``--real`` real covers, each row one of them with every value scaled by
log-normal noise (sigma 0.15), so rows are distinct but as sparse and as clustered as real features. Measured:
reading the index (Parquet to unit vectors), the exact search alone (1, 10 and 100 queries, top 10), the library
call with one cover query (model loaded beforehand; the first call on the index, then a call on the index it
keeps), and the whole ``scorer similar`` process (start-up, model, index, one cover) with its peak memory. Medians
of ``--reps`` (min and max beside them); run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import REPO, cover_files, spread

QUERIES = (1, 10, 100)
TOP = 10


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def real_features(model, n: int) -> tuple[np.ndarray, list[Path]]:
    from scorer.decode import decode_image

    paths = cover_files(n)
    images = np.stack([decode_image(p.read_bytes()) for p in paths])
    return np.concatenate([model.cnn(images[i:i + 16]) for i in range(0, n, 16)]), paths


def write_index(path: Path, base: np.ndarray, paths: list[Path], rows: int, model) -> float:
    """The tiled index, written as ``scorer catalog`` writes its output (the same sink, so its encodings; one row
    group per chunk of :data:`scorer.runners.files.CHUNK_ROWS`); seconds to write it."""
    import pyarrow as pa

    from scorer.runners.files import CHUNK_ROWS
    from scorer.sinks import ParquetSink

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    meta = {"featurizer_id": model.variants[model.precision]["id"], "model_version": model.version,
            "tta": model.tta, "precision": model.precision}
    with ParquetSink(path, meta) as sink:
        for s in range(0, rows, CHUNK_ROWS):
            which = np.arange(s, min(rows, s + CHUNK_ROWS)) % len(base)
            block = (base[which] * rng.lognormal(0.0, 0.15, (len(which), base.shape[1]))).astype(np.float16)
            n = len(which)
            sink.write(pa.table({
                "id": [f"row-{i}" for i in range(s, s + n)], "cover_url": [str(paths[w]) for w in which],
                "genre": [paths[w].parent.name for w in which], "status": ["ok"] * n,
                "error": pa.nulls(n, pa.string()),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(block.ravel(), pa.float16()), base.shape[1])}))
    return time.perf_counter() - start


def timed(fn, reps: int, digits: int = 3) -> dict:
    """Seconds per call of ``fn``: one unrecorded warm-up, then ``reps``."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return spread(times, digits)


def measure(rows: int, real: int, reps: int) -> dict:
    import scorer
    from scorer.runners.similar import nearest
    from scorer.runners.similar_index import _LAST, open_index

    model = scorer.load_model()
    base, paths = real_features(model, real)
    log(f"{real} real covers featurized")
    result: dict = {"rows": rows, "real_covers": real, "dim": int(base.shape[1]), "top": TOP,
                    "network": list(model.network_key), "cpus": os.cpu_count(),
                    "load_average_before": [round(x, 1) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index.parquet"
        result["write_s"] = round(write_index(index, base, paths, rows, model), 2)
        result["file_mb"] = round(index.stat().st_size / 1e6, 1)
        log(f"index written: {result['file_mb']} MB")
        result["read_index_s"] = timed(lambda: open_index(index).read(), reps)
        unit = open_index(index).read().unit
        result["unit_vectors_mb"] = round(unit.nbytes / 1e6, 1)
        rng = np.random.default_rng(1)
        for q in QUERIES:
            queries = unit[rng.choice(len(unit), q, replace=False)]
            seconds = timed(lambda queries=queries: nearest(unit, queries, TOP), reps * 3, 6)
            result[f"search_{q}_queries_ms"] = {k: round(v * 1000, 1) if k != "reps" else v for k, v in seconds.items()}
        log("search timed")
        cover = str(paths[3])
        def fresh() -> None:  # as the first call on this index: nothing kept from the last
            _LAST.clear()
            scorer.similar(cover, index=index, top=TOP, model=model)

        result["library_one_cover_s"] = timed(fresh, reps)
        result["library_again_s"] = timed(lambda: scorer.similar(cover, index=index, top=TOP, model=model), reps)
        result["command_one_cover_s"], result["command_peak_rss_mb"] = command(cover, index, reps)
        found = scorer.similar(cover, index=index, top=TOP, model=model)
        result["check"] = {"rank_1_cover": found["cover_url"].iloc[0] == cover,
                           "rank_1_similarity": round(float(found["similarity"].iloc[0]), 4)}
    result["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    return result


#: ``scorer`` run so that it says its own peak memory as it exits (the parent's ``RUSAGE_CHILDREN`` would count
#: the pages a forked child shares with this process, which holds the index too)
_CLI = ("import atexit, sys\n"
        "from scorer.scoring import peak_rss_mb\n"
        "atexit.register(lambda: print(f'peak_rss_mb {peak_rss_mb()}', file=sys.stderr))\n"
        "from scorer.cli import main\n"
        "sys.argv[0] = 'scorer'\n"
        "main()\n")


def command(cover: str, index: Path, reps: int) -> tuple[dict, float]:
    """The whole ``scorer similar`` process: seconds, and the largest peak RSS of the runs (MiB)."""
    times, peaks = [], []
    for _ in range(reps):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _CLI, "similar", cover, "--index", str(index), "--top", str(TOP),
                               "--json"], check=True, capture_output=True, text=True, cwd=REPO)
        times.append(time.perf_counter() - start)
        peaks.append(float(done.stderr.strip().splitlines()[-1].split()[-1]))
    return spread(times, 2), max(peaks)


def markdown(r: dict) -> str:
    def ms(key: str) -> str:
        v = r[key]
        return f"{v['median']} ms ({v['min']}-{v['max']})"

    def s(key: str) -> str:
        v = r[key]
        return f"{v['median']} s ({v['min']}-{v['max']})"

    lines = [f"# scorer similar over {r['rows']:,} rows ({r['dim']}-d float16 embeddings, {r['cpus']} CPUs)", "",
             "| what | time |", "|---|---|",
             f"| index file (zstd Parquet) | {r['file_mb']} MB, written in {r['write_s']} s |",
             f"| reading it: Parquet to unit vectors ({r['unit_vectors_mb']} MB of float32) | {s('read_index_s')} |"]
    lines += [f"| exact search, {q} quer{'y' if q == 1 else 'ies'}, top {r['top']} | {ms(f'search_{q}_queries_ms')} |"
              for q in QUERIES]
    lines += [f"| scorer.similar, one cover query (model loaded) | {s('library_one_cover_s')} |",
              f"| scorer.similar again on the same index (kept in memory) | {s('library_again_s')} |",
              f"| scorer similar, the whole process | {s('command_one_cover_s')}, peak RSS "
              f"{r['command_peak_rss_mb']} MiB |", "",
              f"Medians (min-max) of repeated runs; load average {r['load_average_before'][0]} before, "
              f"{r['load_average_after'][0]} after (other work shared the machine). "
              f"The query cover is one of the real covers: its rows come first "
              f"(rank 1 is a row of that cover, with noise: {r['check']['rank_1_cover']}, similarity "
              f"{r['check']['rank_1_similarity']})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--real", type=int, default=512, help="Real covers whose features are tiled.")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "similar",
                        help="Writes OUT.json and OUT.md.")
    args = parser.parse_args()
    result = measure(args.rows, args.real, args.reps)
    table = markdown(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
