"""``scorer dataset deezer`` against a loopback fake of Deezer's API (tests/fakes/deezer_api.py and
deezer_catalog.py: genres, genre artists, charts and artists' albums, paged with ``next`` and ``total``, errors
and the quota inside HTTP 200 bodies) and the cover CDN fake: counts and exclusions, resume after SIGKILL asking
nothing twice, bad arguments, and a set that ``scorer train --group-by artist_id`` and ``scorer catalog
--model --keep`` use end to end."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import fakes.deezer_api
import pyarrow.parquet as pq
import pytest
from fakes.cdn import CoverCDN
from fakes.deezer_api import FakeDeezer
from typer.testing import CliRunner
from waiting import wait_for

from scorer.cli import app
from scorer.datasets.deezer import JOURNAL, LABEL_COLUMNS, build_deezer, genre_folder
from scorer.datasets.deezer_genres import resolve_genres
from scorer.errors import UsageError
from scorer.fetch import FetchOptions
from scorer.services.deezer import DeezerClient

REPO = Path(__file__).resolve().parent.parent
ALT, ROCK, POP, JAZZ = 85, 152, 132, 129
GENRES = {ALT: "alternative", ROCK: "rock", POP: "pop"}


@pytest.fixture(autouse=True)
def _no_proxy(no_proxy):
    """Every test here talks to loopback servers."""


def fill(fake: FakeDeezer, cdn_base: str) -> dict[int, dict[str, list[int]]]:
    """Per genre G (and N, the next of the three): artist A with 7 albums of G (past the cap of 5); B with 4,
    plus a single, an EP, a compilation and a jazz album; C with 5, one without a cover and one whose cover is a
    404; an artist Deezer no longer has (error 800); S, listed under G and N, with 2 albums of N; Cross, with 1
    album of G and 1 of G that N's chart lists too (two genres); and, found only through G's chart, H with 5."""
    ids: dict[int, dict[str, list[int]]] = {}
    order = list(GENRES)
    for i, g in enumerate(order):
        n = order[(i + 1) % 3]
        name = GENRES[g]
        a = fake.add_artist(f"{name} A", (g,))
        b = fake.add_artist(f"{name} B", (g,))
        c = fake.add_artist(f"{name} C", (g,))
        gone = fake.add_artist(f"{name} gone", (g,))
        fake.gone.add(gone)
        s = fake.add_artist(f"{name} S", (g, n))
        cross = fake.add_artist(f"{name} Cross", (g,))
        h = fake.add_artist(f"{name} H")  # in no genre's list: only the chart names it
        ids[g] = {
            "A": [fake.add_album(a, f"{name} A{k}", g, release_date=f"{2000 + k}-01-02") for k in range(7)],
            "B": [fake.add_album(b, f"{name} B{k}", g) for k in range(4)],
            "B-other": [fake.add_album(b, f"{name} single", g, record_type="single"),
                        fake.add_album(b, f"{name} ep", g, record_type="ep"),
                        fake.add_album(b, f"{name} hits", g, record_type="compile"),
                        fake.add_album(b, f"{name} jazz", JAZZ)],
            "C": [fake.add_album(c, f"{name} C{k}", g) for k in range(3)],
            "C-bare": [fake.add_album(c, f"{name} bare", g, cover=False)],
            "C-404": [fake.add_album(c, f"{name} lost", g, md5=f"lost{g}", cover_base=f"{cdn_base}/bad")],
            "S": [fake.add_album(s, f"{name} S{k}", n) for k in range(2)],
            "Cross": [fake.add_album(cross, f"{name} Cross", g)],
            "X": [fake.add_album(cross, f"{name} both", g)],
            "H": [fake.add_album(h, f"{name} H{k}", g, release_date="unknown") for k in range(5)],
        }
    for i, g in enumerate(order):
        prev = order[(i - 1) % 3]
        fake.set_chart(g, [ids[g]["H"][0], ids[prev]["X"][0]])
    return ids


def labels(out: Path) -> list[dict[str, str]]:
    with open(out / "labels.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def deezer(cdn, monkeypatch):
    with FakeDeezer(cover_base=f"{cdn.base}/img") as fake:
        monkeypatch.setenv("SCORER_DEEZER_API_URL", fake.base_url)
        yield fake


def test_genres_resolve_by_name_in_any_spelling_or_by_id():
    catalogue = [{"id": gid, "name": name} for gid, name in fakes.deezer_catalog.GENRES]
    got = resolve_genres(["alternative", " RAP / hip-hop ", "152", "r and b", "Soul&Funk", "Alternative"], catalogue)
    assert [(g.id, g.folder) for g in got] == [(85, "alternative"), (116, "rap-hip-hop"), (152, "rock"),
                                               (165, "r-and-b"), (169, "soul-and-funk")]
    assert genre_folder("Films/Games") == "films-games"
    with pytest.raises(UsageError, match="Deezer has no such genre; it has Pop \\(132\\), Rap/Hip Hop \\(116\\)"):
        resolve_genres(["indie"], catalogue)
    with pytest.raises(UsageError, match="'All' is every genre"):
        resolve_genres(["all"], catalogue)
    with pytest.raises(UsageError, match="no such genre"):
        resolve_genres(["999"], catalogue)


def test_three_genres_with_every_exclusion_counted(deezer, cdn, tmp_path, monkeypatch):
    """Pages of 3 (so every list is read in pages, by next), the quota answered twice and waited out."""
    monkeypatch.setattr(fakes.deezer_api, "QUOTA_REQUESTS", 10_000)  # only the burst below answers the quota
    ids = fill(deezer, cdn.base)
    waits: list[float] = []
    client = DeezerClient(base_url=deezer.base_url, sleep=waits.append)
    deezer.quota_burst(2)
    summary = build_deezer(["Alternative", "rock", "132"], 20, tmp_path / "set", client=client, page_limit=3,
                           fetch=FetchOptions(allow_private_hosts=True, cache=False, backoff=0.01))

    assert waits == [5.0, 5.0] and summary.quota_waits == 2 and deezer.quota_answers == 2
    for g, name in GENRES.items():
        t = summary.genres[name]
        assert (t.covers, t.new, t.wanted) == (20, 20, 20), (name, t)
        # A's 7th album is never read: the cap is reached on its second page of 3, whose last album is the 6th
        assert (t.not_album, t.other_genre, t.two_genres, t.no_cover, t.artist_cap) == (3, 3, 1, 2, 1), (name, t)
        assert (t.failed, t.unusable, t.artists, t.seen) == (0, 0, 8, 30), (name, t)
        files = sorted(p.name for p in (tmp_path / "set" / name).iterdir())
        taken = [*ids[g]["A"][:5], *ids[g]["B"], *ids[g]["C"], *ids[g]["Cross"], *ids[g]["H"]]
        prev = [p for p in GENRES if ids[p]["S"][0] in deezer.albums and deezer.albums[ids[p]["S"][0]]["genre_id"] == g]
        taken += ids[prev[0]]["S"]
        assert files == sorted(f"{a}.jpg" for a in taken), name
    assert summary.complete

    rows = labels(tmp_path / "set")
    assert tuple(rows[0]) == LABEL_COLUMNS and len(rows) == 60
    first = ids[ALT]["A"][0]
    row = next(r for r in rows if r["album_id"] == str(first))
    artist_id = deezer.albums[first]["_artist"]
    assert row == {"path": f"alternative/{first}.jpg", "genre": "alternative", "album_id": str(first),
                   "artist": "alternative A", "artist_id": str(artist_id), "title": "alternative A0", "year": "2000",
                   "source": "deezer"}
    assert next(r for r in rows if r["album_id"] == str(ids[ALT]["H"][0]))["year"] == ""  # no year Deezer gave
    for r in rows:
        assert (tmp_path / "set" / r["path"]).read_bytes()[:3] == b"\xff\xd8\xff"

    asked = [(path, q.get("index"), q.get("limit")) for path, q in deezer.requests]
    assert asked.count(("/genre", None, None)) == 3  # two quota answers, then the list
    assert all(limit == "3" for path, _, limit in asked if path.endswith("/albums"))
    a_pages = [int(i) for path, i, _ in asked if path == f"/artist/{deezer.albums[first]['_artist']}/albums"]
    assert a_pages == [0, 3]  # the third page is not asked: the artist has its 5 by then
    assert summary.requests == len(deezer.requests)
    assert [cdn.hits[f"/bad/lost{g}-250x250.jpg"] for g in GENRES] == [1, 1, 1]  # each 404 asked once


def test_bad_arguments_fail_before_any_request(deezer, tmp_path):
    base = ["dataset", "deezer", "--out", str(tmp_path / "set"), "--allow-private-hosts"]
    (tmp_path / "file").write_text("x")
    for args, message in [([*base, "--genre", "rock", "--per-genre", "0"], "--per-genre"),
                          ([*base, "--genre", " , "], "at least one --genre"),
                          (["dataset", "deezer", "--genre", "rock", "--out", str(tmp_path / "file")], "is a file"),
                          ([*base, "--genre", "rock", "--per-artist", "0"], "--per-artist")]:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert deezer.requests == []
    unknown = CliRunner().invoke(app, [*base, "--genre", "rock", "--genre", "indie"])
    assert unknown.exit_code == 2 and "--genre 'indie': Deezer has no such genre; it has Pop (132)" in unknown.output
    assert len(unknown.output.strip().splitlines()) == 1
    assert [path for path, _ in deezer.requests] == ["/genre"]  # asked, and nothing else
    assert not (tmp_path / "set").exists()


def test_killed_run_resumes_and_asks_for_nothing_twice(sample_covers, tmp_path, monkeypatch):
    """SIGKILL part-way through the CLI; the same command again finishes the set, which equals an uninterrupted
    run's, and asks Deezer for no answer and the CDN for no cover the killed run had journaled."""
    monkeypatch.setattr(fakes.deezer_api, "QUOTA_REQUESTS", 10_000)  # three runs in a few seconds: no quota here
    with CoverCDN(sample_covers, latency=0.1) as slow, FakeDeezer(cover_base=f"{slow.base}/img") as fake:
        ids = fill(fake, slow.base)
        env = {**os.environ, "SCORER_DEEZER_API_URL": fake.base_url}

        def command(out: Path) -> list[str]:
            return [sys.executable, "-m", "scorer.cli", "dataset", "deezer", "-g", "Alternative", "-g", "Rock", "-g",
                    "Pop", "--per-genre", "20", "--out", str(out), "--allow-private-hosts", "--no-cache", "--json"]

        whole = tmp_path / "whole"
        r = subprocess.run(command(whole), env=env, cwd=REPO, capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        built = json.loads(r.stdout)
        assert built["complete"] and len(labels(whole)) == 60
        for name in GENRES.values():  # pages of 100: A's 7 albums come in one page, so both past the cap count
            t = built["genres"][name]
            assert (t["covers"], t["not_album"], t["other_genre"], t["two_genres"], t["no_cover"], t["artist_cap"],
                    t["failed"]) == (20, 3, 3, 1, 2, 2, 0), (name, t)

        fake.requests.clear()
        killed = tmp_path / "killed"
        proc = subprocess.Popen(command(killed), env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        journal = killed / JOURNAL
        wait_for(lambda: journal.exists() and journal.read_text().count('"event": "cover"') >= 10,
                 "10 covers in the journal", proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        events = [json.loads(line) for line in journal.read_text().splitlines() if line.endswith("}")]
        covered = sum(e["event"] == "cover" for e in events)
        assert 10 <= covered < 60  # killed part-way
        decided = {e["album_id"] for e in events if e["event"] in ("cover", "no_cover")}
        answered = {e["key"] for e in events if e["event"] == "answer"}
        asked_before = len(fake.requests)
        hits_before = slow.hits.copy()

        r = subprocess.run(command(killed), env=env, cwd=REPO, capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        resumed = json.loads(r.stdout)
        assert resumed["complete"] and sum(t["new"] for t in resumed["genres"].values()) == 60 - covered
        assert resumed["requests"] == len(fake.requests) - asked_before
        asked_again = {_key(path, query) for path, query in fake.requests[asked_before:]}
        assert asked_again and not asked_again & answered
        assert "genre" in answered and "genre" not in asked_again  # the genre list too comes from the journal
        covers_again = slow.hits - hits_before
        for album_id in decided:
            album = fake.albums[int(album_id)]
            assert not covers_again[album["cover_medium"].split(slow.base, 1)[1]], album_id

        assert labels(killed) == labels(whole)
        for row in labels(whole):
            assert (killed / row["path"]).read_bytes() == (whole / row["path"]).read_bytes()
        assert not list(killed.rglob("*.tmp"))
        assert {r["album_id"] for r in labels(whole)} >= {str(a) for g in GENRES for a in ids[g]["H"]}


def _key(path: str, query: dict[str, str]) -> str:
    """The journal's key of a request: its path, and the page's index for paged lists."""
    path = path.lstrip("/")
    return f"{path}@{query['index']}" if "index" in query else path


def test_build_then_train_then_score_a_catalog(spotify_dir, tmp_path, monkeypatch):
    """The README's path: build a set from three genres, train on it grouped by artist, score with --keep."""
    monkeypatch.setenv("SCORER_CACHE_DIR", str(tmp_path / "cache"))  # its covers and features stay its own
    stores = {ALT: "classical", ROCK: "metal", POP: "hiphop"}  # covers that differ by genre
    held_out: list[Path] = []
    with (CoverCDN(sorted((spotify_dir / "classical").glob("*.jpg"))[:14]) as c1,
          CoverCDN(sorted((spotify_dir / "metal").glob("*.jpg"))[:14]) as c2,
          CoverCDN(sorted((spotify_dir / "hiphop").glob("*.jpg"))[:14]) as c3,
          FakeDeezer(cover_base=f"{c1.base}/img") as fake):
        for (g, folder), cdn in zip(stores.items(), (c1, c2, c3)):
            names = _distinct_names(cdn, 12)
            artists = [fake.add_artist(f"{folder} artist {k}", (g,)) for k in range(6)]
            for i in range(12):
                fake.add_album(artists[i // 2], f"{folder} {i}", g, md5=names[i], cover_base=f"{cdn.base}/img")
            held_out += sorted((spotify_dir / folder).glob("*.jpg"))[20:23]
        result = CliRunner().invoke(app, ["dataset", "deezer", "-g", "alternative", "-g", "ROCK", "-g", "132",
                                          "--per-genre", "12", "--out", str(tmp_path / "set"), "--allow-private-hosts",
                                          "--json"], env={"SCORER_DEEZER_API_URL": fake.base_url})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert {g: t["covers"] for g, t in summary["genres"].items()} == {"alternative": 12, "rock": 12, "pop": 12}

    model = tmp_path / "model"
    result = CliRunner().invoke(app, ["train", str(tmp_path / "set"), "--group-by", "artist_id", "--folds", "3",
                                      "--out", str(model), "--name", "deezer-mini"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["genres"] == ["alternative", "pop", "rock"]
    assert manifest["training_set"]["images"] == 36
    assert manifest["training_set"]["grouping"]["artists"]["known"] == 18  # 6 artists per genre, two albums each

    catalog = tmp_path / "catalog.csv"
    catalog.write_text("cover_url\n" + "".join(f"{p}\n" for p in held_out))
    out = tmp_path / "scored.parquet"
    result = CliRunner().invoke(app, ["catalog", str(catalog), "--out", str(out), "--model", str(model),
                                      "--keep", "alternative"])
    assert result.exit_code == 0, result.output
    df = pq.read_table(out).to_pandas()
    assert len(df) == 9 and (df.status == "ok").all()
    assert set(df.genre) <= {"alternative", "pop", "rock"}
    assert (df.kept == (df.genre == "alternative")).all()
    assert (df.genre == "alternative").iloc[:3].sum() >= 2  # classical covers, which the model learned as alternative


def _distinct_names(cdn: CoverCDN, n: int) -> list[str]:
    """``n`` cover names (md5s) that the CDN serves as ``n`` different covers."""
    names: list[str] = []
    seen: set[int] = set()
    k = 0
    while len(names) < n:
        md5 = f"{k:032x}"
        k += 1
        if (i := cdn.cover_index(f"{md5}-250x250.jpg")) not in seen:
            seen.add(i)
            names.append(md5)
    return names
