"""Progress bars (``scorer.progress``) are drawn on stderr when it is a terminal and only then: real runs of the
command line with stderr on a pseudo-terminal, then on a pipe."""

from __future__ import annotations

import csv
import json
import os
import pty
import re
import subprocess
import sys

from tests.conftest import REPO

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: a frame of the bar: its label, then (after the bar itself) ``done/total``, total ``?`` when unknown, then the
#: time left when the total is known
FRAME = re.compile(r"^(\S+) .*?(\d+)/(\d+|\?)(?: +-?[\d:-]+)?$")


def _scorer(args: list[str], env: dict, terminal: bool, tmp_path) -> tuple[str, bytes]:
    """Run ``scorer ARGS`` with stderr on a pseudo-terminal (``terminal``) or a pipe: (stdout, stderr bytes)."""
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100", **env}
    env.pop("NO_COLOR", None)
    stdout = tmp_path / "stdout"
    with open(stdout, "wb") as out:
        if not terminal:
            r = subprocess.run([sys.executable, "-m", "scorer.cli", *args], stdout=out, stderr=subprocess.PIPE, env=env,
                               cwd=REPO, check=False)
            assert r.returncode == 0, r.stderr
            return stdout.read_text(), r.stderr
        master, slave = pty.openpty()
        p = subprocess.Popen([sys.executable, "-m", "scorer.cli", *args], stdout=out, stderr=slave, env=env, cwd=REPO)
        os.close(slave)
        raw = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal's last writer
                break
            if not chunk:
                break
            raw += chunk
        os.close(master)
        assert p.wait(timeout=300) == 0, raw.decode(errors="replace")
    return stdout.read_text(), raw


def _frames(raw: bytes) -> list[tuple[str, int, str]]:
    """The bar's frames drawn on the terminal, in order: (label, done, total)."""
    text = ANSI.sub("", raw.decode())
    frames = []
    for line in re.split(r"[\r\n]", text):
        m = FRAME.match(line.strip())
        if m:
            frames.append((m.group(1), int(m.group(2)), m.group(3)))
    return frames


def test_catalog_draws_its_bar_on_a_terminal_and_nothing_on_a_pipe(sample_covers, tmp_path):
    catalog = tmp_path / "catalog.csv"
    covers = sample_covers[::3]
    catalog.write_text("cover_url\n" + "".join(f"{p}\n" for p in covers))
    args = ["catalog", str(catalog), "--out", str(tmp_path / "s.parquet"), "--json", "--no-cache"]
    stdout, raw = _scorer(args, {}, terminal=True, tmp_path=tmp_path)
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["rows"] == len(covers) == 14
    frames = _frames(raw)
    assert frames and {label for label, _, _ in frames} == {"scoring"}
    assert {total for _, _, total in frames} == {"?"}  # a catalog's rows are not counted ahead
    done = [n for _, n, _ in frames]
    assert done == sorted(done) and done[-1] == summary["rows"]  # counts up to every row
    assert raw.rstrip(b"\r\n").endswith(b"\x1b[2K")  # transient: the bar erases itself at the end

    stdout, err = _scorer(args, {}, terminal=False, tmp_path=tmp_path)
    assert json.loads(stdout.strip().splitlines()[-1])["rows"] == 14
    assert err == b""


def test_evaluate_counts_the_covers_it_featurizes(sample_covers, tmp_path):
    labels = tmp_path / "labels.csv"
    chosen = [p for p in sample_covers if p.parent.name in ("country", "hiphop", "rock")][::2]
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre"])
        w.writerows([p, p.parent.name] for p in chosen)
    args = ["evaluate", str(labels), "--folds", "2", "--heads", "cnn-logreg", "--json"]
    # a cold feature cache, so that every cover is featurized
    stdout, raw = _scorer(args, {"SCORER_CACHE_DIR": str(tmp_path / "cache")}, terminal=True, tmp_path=tmp_path)
    assert json.loads(stdout.strip().splitlines()[-1])["images"] == len(chosen) == 12
    frames = [f for f in _frames(raw) if f[0] == "featurizing"]
    assert frames and {total for _, _, total in frames} == {"12"}
    done = [n for _, n, _ in frames]
    assert done == sorted(done) and done[-1] == 12

