"""Bandcamp-study link files: the parser (property-based), and ``scorer links`` / ``scorer evaluate``
over the real 10,000-line link file with its host rewritten to a loopback CDN serving real covers."""

from __future__ import annotations

import json
import string
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import SHARED
from fakes.cdn import CoverCDN
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from scorer.cli import app
from scorer.filters import UsageError
from scorer.sources.linkfile import links_table, parse_link_line, read_links

LINKS = SHARED / "bandcamp" / "dataset-links.tsv"
BANDCAMP_GENRES = ["ambient", "dubstep", "folk", "hiphop_rap", "jazz", "metal", "pop", "punk", "rock", "soul"]

# ------------------------------------------------------------------------------------------ parser

token = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=20)
hosts = st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,8}){0,3}(:[0-9]{2,5})?", fullmatch=True)
paths = st.lists(token, min_size=0, max_size=4).map("/".join)


@given(scheme=st.sampled_from(["http", "https", "HTTP"]), host=hosts, path=paths, genre=token, album=token,
       ext=st.sampled_from([".jpg", ".png", ".jpeg", ""]), crlf=st.booleans())
def test_valid_lines_round_trip(scheme, host, path, genre, album, ext, crlf):
    url = f"{scheme}://{host}/{path}"
    link = parse_link_line(f"{url}\t{genre}/{album}{ext}" + ("\r" if crlf else ""))
    assert (link.url, link.genre, link.album_id, link.name) == (url, genre, album, f"{genre}/{album}{ext}")


@given(st.text(max_size=120))
def test_parser_never_crashes_and_rejects_what_is_not_a_link(line):
    try:
        link = parse_link_line(line)
    except ValueError as e:
        assert str(e)
    else:  # whatever it accepted has the documented shape
        assert "\t" in line and link.url.lower().startswith(("http://", "https://")) and link.genre and link.album_id


@pytest.mark.parametrize("line", [
    "http://f1.bcbits.com/img/a1_2.jpg",  # one column
    "http://f1.bcbits.com/img/a1_2.jpg ambient/a1.jpg",  # space, not tab
    "http://f1.bcbits.com/img/a1_2.jpg\tambient/a1.jpg\textra",  # three columns
    "ftp://f1.bcbits.com/img/a1_2.jpg\tambient/a1.jpg",  # not http(s)
    "http://f1.bcbits.com/img/a1_2.jpg\ta1.jpg",  # no genre
    "http://f1.bcbits.com/img/a1_2.jpg\tambient/sub/a1.jpg",  # nested
    "cover.jpg\tambient/a1.jpg",  # not a URL
])
def test_malformed_lines(line):
    with pytest.raises(ValueError):
        parse_link_line(line)


def test_bad_file_names_lines_and_format(tmp_path):
    f = tmp_path / "links.tsv"
    f.write_text("http://x.org/a.jpg\trock/a.jpg\n\nhttp://x.org/b.jpg rock/b.jpg\nnonsense\n")
    with pytest.raises(UsageError) as e:
        read_links(f)
    message = str(e.value)
    assert "2 malformed line(s)" in message and "line 3:" in message and "line 4:" in message
    assert "<cover URL><TAB><genre>/<album_id>.jpg" in message
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n")
    with pytest.raises(UsageError, match="no links"):
        read_links(empty)


@pytest.fixture(scope="session")
def real_links(covers_dir) -> list:  # covers_dir: the shared data must be there (fails in CI if not)
    assert LINKS.is_file(), f"{LINKS} missing"
    return read_links(LINKS)


def test_the_real_link_file(real_links):
    assert len(real_links) == 10_000
    assert Counter(x.genre for x in real_links) == dict.fromkeys(BANDCAMP_GENRES, 1000)
    assert all(x.url.startswith("http://f1.bcbits.com/img/") for x in real_links)
    table = links_table(real_links)
    assert table.column_names == ["cover_url", "label", "album_id", "name"] and table.num_rows == 10_000


# ------------------------------------------------------------------------------ over a loopback CDN


def rewrite(lines: list[str], base: str, out: Path) -> Path:
    """The link file with its host replaced by the loopback CDN's (paths kept: /img/a…_2.jpg)."""
    out.write_text("".join(line.replace("http://f1.bcbits.com", base) for line in lines))
    return out


@pytest.fixture(scope="module")
def cdn(covers_dir):
    with CoverCDN(sorted(covers_dir.rglob("*.jpg"))) as server:
        yield server


def run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_links_scores_every_row_with_its_label(cdn, tmp_path):
    lines = LINKS.read_text().splitlines(keepends=True)
    sample = lines[::250]  # 40 lines, 4 per genre
    broken = [f"{cdn.base}/bad/gone\trock/gone.jpg\n", f"{cdn.base}/bad/html\tjazz/html.jpg\n",
              "http://169.254.169.254/latest/meta-data/\tpop/metadata.jpg\n"]
    src = rewrite(sample + broken, cdn.base, tmp_path / "links.tsv")
    out = tmp_path / "scored.parquet"
    code, output = run("links", src, "--out", out, "--allow-private-hosts", "--retries", "0", "--keep", "rock")
    assert code == 0, output
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == len(sample) + len(broken)
    assert [r["name"] for r in rows] == [line.split("\t")[1].strip() for line in sample + broken]
    assert [r["label"] for r in rows[: len(sample)]] == [line.split("\t")[1].split("/")[0] for line in sample]
    assert all(r["status"] == "ok" for r in rows[: len(sample)])
    assert [r["status"] for r in rows[len(sample):]] == ["http_404", "not_an_image", "blocked_address"]
    assert {r["kept"] for r in rows if r["genre"] == "rock"} == {True}


def test_links_over_all_10000_lines(cdn, tmp_path):
    """The whole real link file, served from loopback: every row scored, none lost."""
    src = rewrite(LINKS.read_text().splitlines(keepends=True), cdn.base, tmp_path / "all.tsv")
    out = tmp_path / "all.parquet"
    code, output = run("links", src, "--out", out, "--allow-private-hosts", "--head", "cnn-xgboost", "--json",
                       "--no-cache")
    assert code == 0, output
    summary = json.loads(output.strip().splitlines()[-1])
    assert summary["rows"] == summary["scored"] == 10_000
    table = pq.read_table(out, columns=["status", "label", "genre"])
    assert table.num_rows == 10_000
    assert set(table.column("status").to_pylist()) == {"ok"}


def test_evaluate_and_train_from_a_link_file(cdn, tmp_path, monkeypatch):
    monkeypatch.setenv("SCORER_CACHE_DIR", str(tmp_path / "cache"))
    lines = LINKS.read_text().splitlines(keepends=True)
    picked = [line for line in lines if line.split("\t")[1].startswith(("jazz/", "metal/", "soul/"))][::50]
    picked.append(f"{cdn.base}/bad/gone\tjazz/missing.jpg\n")
    src = rewrite(picked, cdn.base, tmp_path / "three.tsv")
    code, output = run("evaluate", src, "--folds", "2", "--json", "--allow-private-hosts", "--retries", "0")
    assert code == 0, output
    result = json.loads(output.strip().splitlines()[-1])
    assert result["genres"] == ["jazz", "metal", "soul"]
    assert result["dataset"]["unfetched"] == {"http_404": 1}
    assert result["dataset"]["images"] <= len(picked) - 1  # the CDN may serve one cover at two paths
    assert set(result["heads"]) >= {"cnn-xgboost", "cnn-logreg", "ensemble"}  # the default heads
    before = cdn.statuses.copy()
    code, output = run("train", src, "--out", tmp_path / "model", "--folds", "0", "--allow-private-hosts",
                       "--retries", "0")
    assert code == 0, output
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["genres"] == ["jazz", "metal", "soul"]
    assert manifest["training_set"]["unfetched"] == {"http_404": 1}
    # the second pass revalidated its covers from the cover cache: no cover body was sent again
    served = Counter({k: n for k, n in (cdn.statuses - before).items() if k[0].startswith("/img/")})
    assert {status for _, status in served} == {304}
    assert sum(served.values()) == len(picked) - 1


def test_links_refuses_a_bad_file_before_fetching(cdn, tmp_path):
    src = tmp_path / "bad.tsv"
    src.write_text(f"{cdn.base}/img/a.jpg\trock/a.jpg\n{cdn.base}/img/b.jpg\n")
    before = cdn.hits.copy()
    code, output = run("links", src, "--out", tmp_path / "o.parquet", "--allow-private-hosts")
    assert code == 2 and "line 2" in output
    assert cdn.hits == before and not (tmp_path / "o.parquet").exists()

