"""Faults a user can meet end as one line and a documented exit code, never a traceback (issue 16):
a missing extra, a full disk, a folder we may not write, a read-only file system, an unreachable
output URI, SIGTERM and SIGINT. ``--debug`` shows the traceback. Each runs ``scorer`` as a process,
as cron or systemd would."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from fakes.cdn import CoverCDN
from waiting import wait_for

from scorer.errors import EXIT_CODES

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_proxy(no_proxy):
    pass


_BLOCK = """
import sys
class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NotInstalled())
from scorer.cli import main
main()
"""


def run(*args, env: dict | None = None, block: tuple[str, ...] = (), timeout: float = 300):
    """``scorer ARGS`` in a new process; ``block``: modules that cannot be found, as when an extra is not installed."""
    code = f"BLOCKED = {set(block)!r}\n{_BLOCK}"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, check=False)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def write_catalog(path: Path, urls: list[str]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "cover_url"])
        w.writerows([f"{i:05d}", u] for i, u in enumerate(urls))
    return path


def labelled(tmp_path: Path, covers: list[Path]) -> Path:
    rows = [(str(p), p.parent.name) for p in covers]
    path = tmp_path / "labels.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("path", "genre"), *rows])
    return path


# ------------------------------------------------------------------------------------------ extras
@pytest.mark.parametrize(("args", "module", "extra"), [
    (("evaluate", "{labels}", "--folds", "2"), "imagehash", "train"),
    (("evaluate", "{labels}", "--folds", "2", "--finetune"), "torch", "export"),
    (("catalog", "{catalog}", "--out", "{out}", "--engine", "ray"), "ray", "ray"),
])
def test_a_missing_extra_names_the_install_that_adds_it(sample_covers, tmp_path, args, module, extra):
    paths = {"labels": labelled(tmp_path, sample_covers[:16]), "out": tmp_path / "out",
             "catalog": write_catalog(tmp_path / "c.csv", [str(p) for p in sample_covers[:4]])}
    r = run(*(a.format(**paths) for a in args), block=(module,))
    assert r.returncode == 78, r.stderr
    line = one_line(r.stderr)
    assert f"pip install 'scorer[{extra}]'" in line and f"no module {module!r}" in line


def test_the_handler_needs_nothing_the_runtime_install_lacks(sample_covers, tmp_path):
    # typer vendors click: a runtime-only install has no click module, and the fault handler must not need one
    r = run("evaluate", labelled(tmp_path, sample_covers[:16]), block=("sklearn", "click"))
    assert r.returncode == 78 and "pip install 'scorer[train]'" in one_line(r.stderr)


def test_debug_shows_the_traceback(sample_covers, tmp_path):
    r = run("--debug", "evaluate", labelled(tmp_path, sample_covers[:16]), "--folds", "2", block=("imagehash",))
    assert r.returncode == 1 and "Traceback" in r.stderr and "ModuleNotFoundError" in r.stderr
    r = run("evaluate", labelled(tmp_path, sample_covers[:16]), "--folds", "2", block=("imagehash",),
            env={"SCORER_DEBUG": "1"})
    assert r.returncode == 1 and "Traceback" in r.stderr


# ------------------------------------------------------------------------------------------ the disk
def in_namespace(script: str, tmp_path: Path) -> dict:
    """Run ``script`` (Python, with ``small`` a tmpfs of its own mounted) as root of a user and mount
    namespace of its own, where any user may mount one; what it prints is JSON."""
    if not shutil.which("unshare"):
        pytest.fail("these tests need unshare (util-linux) to mount a small file system")
    body = textwrap.dedent(script)
    path = tmp_path / "scenario.py"
    path.write_text(f"import json, os, subprocess, sys\nfrom pathlib import Path\n{body}")
    r = subprocess.run(["unshare", "-rm", sys.executable, str(path)], cwd=REPO, capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


SCORE = f"""
def scorer(*args):
    r = subprocess.run([sys.executable, "-m", "scorer.cli", *map(str, args)], cwd={str(REPO)!r},
                       capture_output=True, text=True)
    return r.returncode, r.stderr
"""


@pytest.mark.parametrize("free_kb", [40, 1])  # full while rows are written; full before the file's header fits
def test_a_full_disk_says_so_and_keeps_the_old_output(sample_covers, tmp_path, free_kb):
    catalog = write_catalog(tmp_path / "c.csv", [str(p) for p in sample_covers] * 40)  # 1,600 rows
    result = in_namespace(SCORE + f"""
small = Path({str(tmp_path / "small")!r}); small.mkdir()
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(small)], check=True)
(small / "scored.parquet").write_bytes(b"yesterday's output")
with open(small / "filler", "wb") as f:  # leave about free_kb KB
    f.write(b"x" * ((156 - {free_kb}) * 1024))  # 160 KB, less a page for the old output
code, err = scorer("catalog", {str(catalog)!r}, "--out", small / "scored.parquet", "--json")
print(json.dumps({{"code": code, "err": err, "files": sorted(p.name for p in small.iterdir()),
                  "old": (small / "scored.parquet").read_bytes().decode()}}))
""", tmp_path)
    assert result["code"] == 74
    assert f"no space left on the device: {tmp_path / 'small' / 'scored.parquet'};" in one_line(result["err"])
    assert result["files"] == ["filler", "scored.parquet"]  # no temporary file left
    assert result["old"] == "yesterday's output"


def test_a_read_only_file_system_and_a_folder_we_may_not_write(sample_covers, tmp_path):
    catalog = write_catalog(tmp_path / "c.csv", [str(p) for p in sample_covers[:4]])
    result = in_namespace(SCORE + f"""
small = Path({str(tmp_path / "ro")!r}); small.mkdir()
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(small)], check=True)
print(json.dumps(dict(zip(("code", "err"), scorer("catalog", {str(catalog)!r}, "--out", small / "s.parquet")))))
""", tmp_path)
    assert result["code"] == 73 and "read-only file system" in one_line(result["err"])

    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes anywhere a mode allows nothing; an immutable folder stops it too
        flag = subprocess.run(["chattr", "+i", str(locked)], capture_output=True, check=False)
        assert flag.returncode == 0, flag.stderr
    else:
        locked.chmod(0o500)
    try:
        r = run("catalog", catalog, "--out", locked / "s.parquet")
        assert r.returncode == 77, r.stderr
        assert "permission denied" in one_line(r.stderr) and str(locked) in r.stderr
        r = run("catalog", catalog, "--out", locked / "dataset")
        assert r.returncode == 77 and "permission denied" in one_line(r.stderr)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)], check=False)
        locked.chmod(0o700)
    assert list(locked.iterdir()) == []


def test_an_unreachable_output_uri(sample_covers, tmp_path):
    catalog = write_catalog(tmp_path / "c.csv", [str(p) for p in sample_covers[:4]])
    r = run("catalog", catalog, "--out", "ftp://127.0.0.1:9/scores")  # nothing listens on port 9
    assert r.returncode == 73, r.stderr
    assert one_line(r.stderr).startswith("error: --out ftp://127.0.0.1:9/scores: cannot reach it")


def test_an_output_under_a_file_is_a_usage_error(sample_covers, tmp_path):
    """``--out FILE/x.parquet`` (a path through a file): one line before any cover is fetched, not a traceback."""
    catalog = write_catalog(tmp_path / "c.csv", [str(p) for p in sample_covers[:4]])
    (tmp_path / "plain").write_text("a file")
    r = run("catalog", catalog, "--out", tmp_path / "plain" / "sub" / "s.parquet")
    assert r.returncode == 2, r.stderr
    assert one_line(r.stderr) == (f"error: --out {tmp_path / 'plain' / 'sub' / 's.parquet'}: {tmp_path / 'plain'} "
                                  "is a file, not a folder; give a .parquet file name in a folder")


# ------------------------------------------------------------------------------------------ signals
#: ``python -m scorer.cli ARGS`` with SIGINT raising KeyboardInterrupt, whatever the test process inherited
INTERRUPTIBLE = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                 "sys.argv[0] = 'scorer'; runpy.run_module('scorer.cli', run_name='__main__')")
@pytest.mark.parametrize(("sig", "code", "said"), [(signal.SIGTERM, 143, "stopped by SIGTERM"),
                                                    (signal.SIGINT, 130, "interrupted")])
def test_a_signal_stops_cleanly_and_the_dataset_run_resumes(sample_covers, tmp_path, sig, code, said):
    with CoverCDN(sample_covers, latency=0.05) as cdn:
        urls = [f"{cdn.base}/img/s{i // 5}.jpg" for i in range(400)]  # 80 covers, 50 ms each, 2 at a time
        catalog = write_catalog(tmp_path / "c.csv", urls)
        out = tmp_path / "out"
        args = ("catalog", catalog, "--out", out, "--shard-rows", "50", "--allow-private-hosts", "--no-cache",
                "--concurrency", "2", "--per-host", "2", "--json")
        # Ctrl-C as at a terminal: a shell that started the tests in the background hands on SIGINT ignored
        proc = subprocess.Popen([sys.executable, "-c", INTERRUPTIBLE, *map(str, args)], cwd=REPO, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for((out / "part-00001.parquet").exists, "the run writing its second shard", proc=proc)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == code, stderr
        assert said in one_line(stderr) and stdout == ""
        done = sorted(p.name for p in out.glob("part-*.parquet"))
        assert 2 <= len(done) < 8, done
        assert list((out / "_scorer" / "tmp").iterdir()) == []

        again = run(*args)
        assert again.returncode == 0, again.stderr
        report = json.loads(again.stdout.strip().splitlines()[-1])
        assert report["shards_skipped"] >= len(done) and report["rows"] == 400
        df = pd.read_parquet(out)
        assert len(df) == 400 and sorted(df.id) == [f"{i:05d}" for i in range(400)]


def test_a_signal_during_a_single_file_run_leaves_nothing(sample_covers, tmp_path):
    with CoverCDN(sample_covers, latency=0.05) as cdn:
        # the first 4,096 rows (one written chunk) share 100 covers; the rest have 200 of their own
        urls = [f"{cdn.base}/img/t{i % 100}.jpg" for i in range(4096)]
        urls += [f"{cdn.base}/img/u{i}.jpg" for i in range(200)]
        catalog = write_catalog(tmp_path / "c.csv", urls)
        out = tmp_path / "scored.parquet"
        proc = subprocess.Popen([sys.executable, "-m", "scorer.cli", "catalog", str(catalog), "--out", str(out),
                                 "--allow-private-hosts", "--no-cache", "--concurrency", "2", "--per-host", "2"],
                                cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # the first chunk is written to the temporary file; the second is being fetched
        wait_for(lambda: bool(list(tmp_path.glob(".scored.parquet.*"))), "the run's temporary output file",
                 proc=proc)
        assert sum(n for path, n in cdn.hits.items() if "/u" in path) < 150
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 143 and "stopped by SIGTERM" in one_line(stderr)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"]


def test_every_exit_code_is_documented():
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in EXIT_CODES:
        assert f"| {code} |" in table, code
    assert table.count("\n| ") - 1 == len(EXIT_CODES)  # no row the code does not know


def test_outputs_and_the_shared_cache_honour_the_umask(sample_covers, tmp_path):
    with CoverCDN(sample_covers) as cdn:
        catalog = write_catalog(tmp_path / "c.csv", [f"{cdn.base}/img/m{i}.jpg" for i in range(6)])
        env = {**os.environ, "SCORER_CACHE_DIR": str(tmp_path / "cache")}
        for out in (tmp_path / "one.parquet", tmp_path / "dataset"):
            r = subprocess.run(["sh", "-c", 'umask 027 && exec "$@"', "sh", sys.executable, "-m", "scorer.cli",
                                "catalog", str(catalog), "--out", str(out), "--allow-private-hosts"],
                               cwd=REPO, env=env, capture_output=True, text=True, check=False)
            assert r.returncode == 0, r.stderr
    written = [tmp_path / "one.parquet", *(tmp_path / "dataset").glob("part-*.parquet"),
               *(p for p in (tmp_path / "cache" / "covers").rglob("*") if p.is_file())]
    names = sorted(p.name for p in (tmp_path / "cache" / "covers").iterdir() if p.is_file())
    assert names == [".prune.lock", ".usage"]  # the cache's lock and its ledger, beside blobs/ and urls/
    assert len(written) == 1 + 1 + 12 + 2  # the file, one part, 6 blobs and 6 entries, the lock and the ledger
    assert {p.stat().st_mode & 0o777 for p in written} == {0o640}


def test_no_local_files_refuses_every_path_without_touching_the_disk(sample_covers, tmp_path, monkeypatch):
    with CoverCDN(sample_covers) as cdn:
        refs = [str(sample_covers[0]), "file://" + str(sample_covers[1]), "/etc/passwd", "../../no/such/file",
                "missing.jpg", f"{cdn.base}/img/n0.jpg"]
        catalog = write_catalog(tmp_path / "c.csv", refs)
        out = tmp_path / "s.parquet"
        for args, env in ((["--no-local-files"], {}), ([], {"SCORER_NO_LOCAL_FILES": "1"})):
            r = run("catalog", catalog, "--out", out, "--allow-private-hosts", *args, env=env)
            assert r.returncode == 0, r.stderr
            df = pd.read_parquet(out)
            assert list(df.status) == ["local_file_refused"] * 5 + ["ok"]
            assert df.error.iloc[0] == df.error.iloc[2]  # the same words whether the file exists or not
        r = run("catalog", catalog, "--out", out, "--allow-private-hosts")
        # what the refusal hides: which files exist, and which are images
        assert list(pd.read_parquet(out).status) == ["ok", "ok", "not_an_image", "not_found", "not_found", "ok"]


def test_chaos_ten_kills_in_a_row_then_the_same_dataset(sample_covers, tmp_path):
    """A dataset run SIGKILLed at 10 random moments in a row (each rerun resuming from the last), then
    let finish: the dataset equals an uninterrupted run's, and no temporary part is left."""
    import random

    rng = random.Random(16)
    with CoverCDN(sample_covers, latency=0.02) as cdn:
        catalog = write_catalog(tmp_path / "c.csv", [f"{cdn.base}/img/x{i}.jpg" for i in range(500)])

        def command(out: Path) -> list[str]:
            return [sys.executable, "-m", "scorer.cli", "catalog", str(catalog), "--out", str(out), "--shard-rows",
                    "50", "--allow-private-hosts", "--no-cache", "--concurrency", "2", "--per-host", "2", "--json"]

        whole = tmp_path / "whole"
        assert subprocess.run(command(whole), cwd=REPO, capture_output=True, check=False).returncode == 0
        chaos = tmp_path / "chaos"
        kills = 0
        while kills < 10:
            before = sum(cdn.hits.values())
            proc = subprocess.Popen(command(chaos), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            fetched = rng.randint(1, 60)  # covers fetched before the kill: a random moment of the work
            wait_for(lambda: sum(cdn.hits.values()) - before >= fetched or proc.poll() is not None,  # noqa: B023
                     f"run {kills + 1} fetching {fetched} covers (or finishing)", poll=0.005)
            if proc.poll() is not None:
                break  # it finished before this kill: nothing left to interrupt
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        assert kills >= 5, kills  # the run was interrupted again and again
        r = run(*command(chaos)[3:])
        assert r.returncode == 0, r.stderr
        cols = ["id", "cover_url", "status", "genre", "kept"]
        assert pd.read_parquet(chaos)[cols].equals(pd.read_parquet(whole)[cols])
        assert list((chaos / "_scorer" / "tmp").iterdir()) == []
