"""The nightly batch: streamed catalog → Parquet dataset, incremental reruns, resume after SIGKILL, lock,
failure-rate exit code. Covers come from a real loopback CDN; the scorer runs for real (CLI in-process,
and as a subprocess where it must be killed)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fakes.cdn import CoverCDN
from typer.testing import CliRunner
from waiting import wait_for

from scorer.cli import app
from scorer.sinks.dataset import DatasetSink
from scorer.sources.catalog import iter_catalog, read_catalog

REPO = Path(__file__).resolve().parent.parent
NIGHTLY = REPO / "jobs" / "nightly.sh"


def write_catalog(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def catalog_rows(cdn: CoverCDN, n: int, covers: int = 60, tag: str = "") -> list[dict]:
    """``n`` rows sharing ``covers`` distinct cover URLs (as album catalogs do: many releases, reissues)."""
    return [{"id": f"{i:06d}", "title": f"Album {i}", "cover_url": f"{cdn.base}/img/{tag}c{i % covers}.jpg"}
            for i in range(n)]


def invoke(*args) -> tuple[int, dict | str]:
    result = CliRunner().invoke(app, ["catalog", *map(str, args), "--allow-private-hosts", "--no-cache", "--json"])
    if result.exit_code in (0, 3):
        return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])
    return result.exit_code, result.output


def without_time(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["scored_at"]).sort_values("id").reset_index(drop=True)


# -------------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_catalog_streams_in_exact_chunks(tmp_path, fmt):
    rows = [{"id": f"{i:05d}", "cover_url": f"http://x.org/{i % 7}.jpg", "year": str(1960 + i % 60)}
            for i in range(2345)]
    path = tmp_path / f"c.{fmt}"
    if fmt == "csv":
        write_catalog(path, rows)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=333)
    schema, chunks = iter_catalog(path, 500)
    chunks = list(chunks)
    assert [c.num_rows for c in chunks] == [500, 500, 500, 500, 345]
    assert schema.names == ["id", "cover_url", "year"]
    assert pa.concat_tables(chunks).equals(read_catalog(path))


# ------------------------------------------------------------------------------------------- datasets


def test_dataset_run_then_incremental_rerun(cdn, tmp_path):
    rows = catalog_rows(cdn, 1000)
    src = write_catalog(tmp_path / "catalog.csv", rows)
    out = tmp_path / "scored"
    code, first = invoke(src, "--out", out, "--shard-rows", "200", "--keep", "rock")
    assert code == 0, first
    assert first["rows"] == first["rows_rescored"] == 1000 and first["shards"] == 5
    assert first["inferred"] == 60  # each distinct cover scored once in the whole run
    df = pd.read_parquet(out)  # a plain pandas read of the folder: the parts, not _scorer/
    assert len(df) == 1000 and sorted(df.id) == [r["id"] for r in rows]
    assert sorted(p.name for p in out.glob("*.parquet")) == [f"part-{i:05d}.parquet" for i in range(5)]
    assert (df.status == "ok").all()
    summary = json.loads((out / "_scorer" / "summary.json").read_text())
    assert summary["rows"] == 1000 and summary["output"] == str(out)
    baseline = without_time(df)

    # 1% of rows get a new cover (10 rows in shards 0 and 3), one title changes elsewhere
    changed = {5, 17, 101, 150, 199, 600, 601, 602, 777, 799}
    rows2 = [{**r, "cover_url": f"{cdn.base}/img/new-{i}.jpg"} if i in changed else dict(r) for i, r in enumerate(rows)]
    rows2[450]["title"] = "Album 450 (remastered)"
    write_catalog(src, rows2)
    before = cdn.hits.copy()
    code, second = invoke(src, "--out", out, "--shard-rows", "200", "--keep", "rock")
    assert code == 0, second
    assert second["rows_rescored"] == len(changed)
    assert second["shards_skipped"] == 2  # shards 1 and 4 did not change at all
    assert second["rows_carried"] == 3 * 200 - len(changed)  # the other rows of shards 0, 2, 3
    fetched = cdn.hits - before
    assert sorted(fetched) == sorted(f"/img/new-{i}.jpg" for i in changed)  # nothing else was fetched
    df2 = without_time(pd.read_parquet(out))
    assert len(df2) == 1000 and df2.loc[450, "title"] == "Album 450 (remastered)"
    same = [i for i in range(1000) if i not in changed]
    cols = [c for c in baseline.columns if c not in ("title", "cover_url")]
    pd.testing.assert_frame_equal(df2.loc[same, cols], baseline.loc[same, cols])

    # a new filter re-decides `kept` from the stored probabilities; nothing is fetched
    before = cdn.hits.copy()
    code, third = invoke(src, "--out", out, "--shard-rows", "200", "--keep", "rock,pop,country")
    assert code == 0 and third["rows_rescored"] == 0 and third["rows_carried"] == 1000
    assert cdn.hits == before
    df3 = pd.read_parquet(out)
    assert (df3.kept == df3.genre.isin(["rock", "pop", "country"])).all()

    # the catalog shrinks: parts beyond its end go
    write_catalog(src, rows2[:450])
    code, fourth = invoke(src, "--out", out, "--shard-rows", "200", "--keep", "rock,pop,country")
    assert code == 0 and fourth["parts_dropped"] == 2 and fourth["rows"] == 450
    assert len(pd.read_parquet(out)) == 450


def test_another_head_rescored_and_rescore_flag(cdn, tmp_path):
    src = write_catalog(tmp_path / "c.csv", catalog_rows(cdn, 120, covers=12, tag="h"))
    out = tmp_path / "o"
    assert invoke(src, "--out", out, "--shard-rows", "50")[0] == 0
    code, other = invoke(src, "--out", out, "--shard-rows", "50", "--head", "cnn-knn")
    assert code == 0 and other["rows_rescored"] == 120 and other["rows_carried"] == 0
    assert set(pd.read_parquet(out)["head"]) == {"cnn-knn"}
    code, again = invoke(src, "--out", out, "--shard-rows", "50", "--head", "cnn-knn", "--rescore")
    assert code == 0 and again["rows_rescored"] == 120 and again["shards_skipped"] == 0


def test_failure_rate_exit_code_still_writes(cdn, tmp_path):
    rows = catalog_rows(cdn, 20, covers=5, tag="f")
    for r in rows[::2]:
        r["cover_url"] = f"{cdn.base}/bad/gone"
    src = write_catalog(tmp_path / "c.csv", rows)
    code, summary = invoke(src, "--out", tmp_path / "o", "--max-failure-rate", "0.25")
    assert code == 3 and summary["failure_rate"] == 0.5 and summary["failed"] == {"http_404": 10}
    assert len(pd.read_parquet(tmp_path / "o")) == 20
    assert invoke(src, "--out", tmp_path / "o", "--max-failure-rate", "0.6")[0] == 0


def test_a_second_writer_is_refused(cdn, tmp_path):
    src = write_catalog(tmp_path / "c.csv", catalog_rows(cdn, 10, covers=3, tag="l"))
    out = tmp_path / "o"
    with DatasetSink(out).lock():
        code, output = invoke(src, "--out", out)
    assert code == 75 and "another run is writing" in output
    assert not list(out.glob("*.parquet"))
    assert invoke(src, "--out", out)[0] == 0  # the lock went with its holder


def test_output_on_an_fsspec_filesystem(cdn, tmp_path):
    """Any pyarrow/fsspec URI works as the output (here fsspec's in-memory filesystem)."""
    import fsspec

    src = write_catalog(tmp_path / "c.csv", catalog_rows(cdn, 30, covers=3, tag="m"))
    code, summary = invoke(src, "--out", "memory://scorer-test/out", "--shard-rows", "10")
    assert code == 0, summary
    fs = fsspec.filesystem("memory")
    parts = sorted(p for p in fs.ls("/scorer-test/out", detail=False) if p.endswith(".parquet"))
    assert len(parts) == 3
    assert sum(pq.read_table(p, filesystem=fs).num_rows for p in parts) == 30


def test_killed_run_resumes_to_the_same_result(sample_covers, tmp_path):
    """SIGKILL mid-run, rerun the same command: the dataset equals an uninterrupted run's."""
    with CoverCDN(sample_covers, latency=0.05) as cdn:
        # every shard has 20 covers of its own: at 2 connections and 50 ms each, a shard takes >= 0.5 s
        rows = [{**r, "cover_url": f"{cdn.base}/img/k{i // 5}.jpg"} for i, r in enumerate(catalog_rows(cdn, 600))]
        src = write_catalog(tmp_path / "c.csv", rows)
        env = {**os.environ, "SCORER_CACHE_DIR": str(tmp_path / "cache")}

        def command(out: Path) -> list[str]:
            return [sys.executable, "-m", "scorer.cli", "catalog", str(src), "--out", str(out), "--shard-rows", "100",
                    "--allow-private-hosts", "--concurrency", "2", "--per-host", "2", "--json"]

        whole = tmp_path / "whole"
        assert subprocess.run(command(whole), env=env, cwd=REPO, capture_output=True, check=False).returncode == 0

        killed = tmp_path / "killed"
        proc = subprocess.Popen(command(killed), env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_for((killed / "part-00001.parquet").exists, "the run writing its second shard", proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = sorted(p.name for p in killed.glob("*.parquet"))
        assert 2 <= len(done) < 6, done  # killed part-way

        r = subprocess.run(command(killed), env=env, cwd=REPO, capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        resumed = json.loads(r.stdout.strip().splitlines()[-1])
        assert resumed["shards_skipped"] >= len(done) and resumed["rows"] == 600
        pd.testing.assert_frame_equal(without_time(pd.read_parquet(killed)), without_time(pd.read_parquet(whole)))
        assert not list((killed / "_scorer" / "tmp").iterdir())


def test_nightly_job_script(cdn, tmp_path):
    """jobs/nightly.sh as cron or systemd runs it: configured by environment, JSON summary out."""
    src = write_catalog(tmp_path / "c.csv", catalog_rows(cdn, 40, covers=4, tag="j"))
    out = tmp_path / "nightly"
    env = {**os.environ, "SCORER_CATALOG": str(src), "SCORER_OUT": str(out), "SCORER_KEEP": "rock,pop",
           "SCORER_ARGS": "--allow-private-hosts --shard-rows 16",
           "SCORER_BIN": str(Path(sys.executable).parent / "scorer")}
    r = subprocess.run(["bash", str(NIGHTLY)], env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["rows"] == 40 and summary["shards"] == 3
    assert json.loads((out / "_scorer" / "summary.json").read_text())["keep"] == ["rock", "pop"]
    assert len(pd.read_parquet(out)) == 40
    del env["SCORER_CATALOG"]
    r = subprocess.run(["bash", str(NIGHTLY)], env=env, capture_output=True, text=True, check=False)
    assert r.returncode != 0 and "SCORER_CATALOG" in r.stderr
