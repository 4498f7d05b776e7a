"""``scorer dataset musicbrainz`` against loopback fakes of MusicBrainz's search API and the Cover Art
Archive (tests/fakes/musicbrainz.py): counts, exclusions, pacing, 503s, resume after SIGKILL, and a
set that ``scorer train --group-by artist_mbid`` and ``scorer catalog --model`` use end to end."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
from fakes.musicbrainz import FakeCoverArt, FakeMusicBrainz, mbid
from typer.testing import CliRunner
from waiting import FakeClock, wait_for

from scorer.cli import app
from scorer.datasets.musicbrainz import LABEL_COLUMNS, build_musicbrainz, folder_name
from scorer.fetch import FetchOptions
from scorer.filters import UsageError
from scorer.services.musicbrainz import (
    BUSY_WAIT_S,
    MIN_INTERVAL_S,
    MusicBrainzClient,
    album_query,
    check_contact,
    parse_release_group,
)
from scorer.version import __version__

REPO = Path(__file__).resolve().parent.parent
CONTACT = "listener@example.org"
FAST = 0.05  # seconds between requests against the fakes; the pacing test uses the real 1 s
GENRES = ("indie", "rock", "pop")


@pytest.fixture(autouse=True)
def _no_proxy(no_proxy):
    pass


def fill(mb: FakeMusicBrainz, caa: FakeCoverArt, covers: list[Path]) -> dict[str, dict[str, str]]:
    """Per genre: artist A's three albums, a compilation, an album whose tag was voted to 0, one without a
    cover, and artists B, C, D; before them, albums tagged with two genres or a longer tag."""
    pool = iter(covers)
    mb.add("Both Ways", "Crossover", {"indie": 2, "rock": 1})
    mb.add("Jangle", "Longer Tag", {"indie rock": 3})
    mb.add("Three Chords", "Punks", {"pop punk": 2, "punk": 1})
    ids: dict[str, dict[str, str]] = {}
    for g in GENRES:
        ids[g] = {
            "A1": mb.add(f"{g} one", f"{g} A", {g: 3}, date="1999-03-01"),
            "comp": mb.add(f"{g} hits", "Various Artists", {g: 1}, secondary=("Compilation",)),
            "A2": mb.add(f"{g} two", f"{g} A", {g: 2}, date="2001"),
            "A3": mb.add(f"{g} three", f"{g} A", {g: 2}),
            "zero": mb.add(f"{g} disputed", f"{g} Z", {g: 0, "jazz": 2}),
            "E": mb.add(f"{g} bare", f"{g} E", {g: 1}),
            "B": mb.add(f"{g} bee", f"{g} B", {g: 1, "seen live": 4}),
            "C": mb.add(f"{g} sea", f"{g} C", {g: 1}),
            "D": mb.add(f"{g} dee", f"{g} D", {g: 1}),
        }
        for key, rg in ids[g].items():
            if key != "E":
                caa.set_cover(rg, next(pool))
    for rg in (mbid("rg", "Crossover", "Both Ways"), mbid("rg", "Longer Tag", "Jangle")):
        caa.set_cover(rg, next(pool))
    return ids


def labels(out: Path) -> list[dict[str, str]]:
    with open(out / "labels.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def build(mb, caa, out, per_genre=4, **kw):
    return build_musicbrainz(list(kw.pop("genres", GENRES)), per_genre, out, CONTACT,
                             fetch=FetchOptions(allow_private_hosts=True, cache=False, backoff=0.01), api_url=mb.base,
                             coverart=caa.base, interval=kw.pop("interval", FAST), **kw)


# ------------------------------------------------------------------------------------------ the parts
def test_search_result_as_musicbrainz_returns_it():
    item = {"id": "0a2c7f4f-9f0a-4f0e-8d55-6a8e3b0d2b11", "type-id": "f529b476-6e62-324f-b0aa-1f3e33d313fc",
            "score": 100, "count": 2, "title": "Songs", "first-release-date": "1997-06-16", "primary-type": "Album",
            "secondary-types": ["Live"],
            "artist-credit": [{"name": "Ann", "joinphrase": " & ", "artist": {"id": "a-1", "name": "Ann Smith"}},
                              {"name": "Bo", "artist": {"id": "b-2", "name": "Bo"}}],
            "releases": [{"id": "r-1", "title": "Songs"}],
            "tags": [{"count": 2, "name": "Indie  Rock"}, {"count": 0, "name": "pop"}, {"count": -1, "name": "x"}]}
    rg = parse_release_group(item)
    assert rg is not None
    assert (rg.mbid, rg.title, rg.artist, rg.artist_mbid, rg.year) == (item["id"], "Songs", "Ann & Bo", "a-1", "1997")
    assert rg.tags == ("indie rock",)  # lowercased; tags voted to zero or below do not count
    assert rg.secondary_types == ("Live",) and rg.primary_type == "Album"
    assert parse_release_group({"title": "no id"}) is None
    assert parse_release_group({"id": "x", "first-release-date": "unknown"}).year == ""


def test_query_and_contact():
    assert album_query("hip hop") == 'tag:"hip hop" AND primarytype:album'
    assert album_query('a"b\\') == 'tag:"a\\"b\\\\" AND primarytype:album'
    assert check_contact(" me@example.org ") == "me@example.org"
    assert check_contact("https://example.org/me") == "https://example.org/me"
    for bad in ("", "me", "me@", "example.org", "ftp://example.org"):
        with pytest.raises(UsageError, match="contact"):
            check_contact(bad)
    assert folder_name("Hip Hop") == "hip-hop" and folder_name("r&b") == "r-b"


def test_fakes_refuse_what_the_real_services_refuse():
    clock = FakeClock()
    with FakeMusicBrainz(clock=clock) as mb, FakeCoverArt(clock=clock) as caa:
        rg = mb.add("Album", "Band", ["rock"])
        caa.set_cover(rg, b"\xff\xd8\xff")
        url = f"{mb.base}release-group"
        query = {"query": album_query("rock"), "fmt": "json"}
        assert requests.get(url, params=query, timeout=5).status_code == 403  # python-requests/x: a default agent
        ok = requests.get(url, params=query, headers={"User-Agent": "t/1 ( a@b.cd )"}, timeout=5)
        assert ok.status_code == 200 and ok.json()["count"] == 1
        fast = requests.get(url, params=query, headers={"User-Agent": "t/1 ( a@b.cd )"}, timeout=5)
        assert fast.status_code == 503 and "rate limit" in fast.json()["error"]
        front = f"{caa.base}release-group/{rg}/front-250"
        first = requests.get(front, allow_redirects=False, timeout=5)
        assert first.status_code == 307 and "/download/mbid-" in first.headers["Location"]
        assert requests.get(front, allow_redirects=False, timeout=5).status_code == 503
        clock.advance(1.0)
        assert requests.get(f"{caa.base}release-group/{mbid('none')}/front-250", timeout=5).status_code == 404
        assert mb.too_fast == 1 and caa.too_fast == 1


# ------------------------------------------------------------------------------------------ building
def test_three_genres_balanced_with_every_exclusion_counted(sample_covers, tmp_path):
    with FakeMusicBrainz(FAST) as mb, FakeCoverArt(FAST) as caa:
        ids = fill(mb, caa, sample_covers)
        summary = build(mb, caa, tmp_path / "set", per_genre=4, per_artist=2, page_limit=3)

        for g in GENRES:
            t = summary.genres[g]
            assert (t.covers, t.new, t.no_cover, t.not_studio, t.artist_cap) == (4, 4, 1, 1, 1), (g, t)
            assert t.two_genres == (1 if g in ("indie", "rock") else 0), (g, t)
            assert t.other_tag == 2, (g, t)  # "indie rock" (or "pop punk"), and the tag voted to 0
            assert t.failed == 0 and t.matches == (11 if g != "pop" else 10)
            files = sorted(p.name for p in (tmp_path / "set" / g).iterdir())
            assert files == sorted(f"{ids[g][k]}.jpg" for k in ("A1", "A2", "B", "C"))
        assert summary.complete

        rows = labels(tmp_path / "set")
        assert list(rows[0]) == list(LABEL_COLUMNS) and len(rows) == 12
        a1 = next(r for r in rows if r["mbid"] == ids["indie"]["A1"])
        assert a1 == {"path": f"indie/{ids['indie']['A1']}.jpg", "genre": "indie", "mbid": ids["indie"]["A1"],
                      "artist": "indie A", "artist_mbid": mbid("artist", "indie A"), "title": "indie one",
                      "year": "1999"}
        for r in rows:
            assert (tmp_path / "set" / r["path"]).read_bytes()[:3] == b"\xff\xd8\xff"

        # every request named the application, version and contact; JSON asked for; pages of 3 in order
        agents = {agent for *_, agent in mb.log} | {agent for *_, agent in caa.log}
        assert agents == {f"scorer/{__version__} ( {CONTACT} )"}
        indie = [q for _, _, q, _, _ in mb.log if 'tag:"indie"' in requests.utils.unquote(q)]
        assert [int(q.split("offset=")[1].split("&")[0]) for q in indie] == [0, 3, 6, 9]
        assert all("fmt=json" in q and "limit=3" in q for _, _, q, _, _ in mb.log)
        assert mb.too_fast == caa.too_fast == 0
        asked = caa.asked()
        assert len(asked) == len(set(asked)) == 15  # 4 covers and one 404 per genre, each asked once
        assert len(caa.storage_log) == 2 * 12  # each cover: the archive's redirect, then the storage node's


def test_the_client_paces_one_search_a_second_and_waits_out_busy_answers():
    """MusicBrainzClient on a fake clock, which the fake service judges its pacing by: every wait asked for."""
    clock = FakeClock()
    with FakeMusicBrainz(clock=clock) as mb:
        for i in range(3):
            mb.add(f"Album {i}", f"Artist {i}", {"indie": 1})
        mb.busy(2)
        client = MusicBrainzClient(CONTACT, base_url=mb.base, sleep=clock.sleep, clock=clock)
        pages = [client.search_albums("indie", offset, limit=1) for offset in range(3)]
    assert [[g.title for g in p.groups] for p in pages] == [["Album 0"], ["Album 1"], ["Album 2"]]
    assert mb.statuses() == [503, 503, 200, 200, 200] and mb.too_fast == 0
    # two busy answers waited 2 s then 4 s (doubling from BUSY_WAIT_S); then one second between searches
    assert clock.slept == [BUSY_WAIT_S, 2 * BUSY_WAIT_S, MIN_INTERVAL_S, MIN_INTERVAL_S]
    times = [t for t, *_ in mb.log]
    assert [b - a for a, b in zip(times, times[1:])] == [BUSY_WAIT_S, 2 * BUSY_WAIT_S, MIN_INTERVAL_S, MIN_INTERVAL_S]
    assert (client.requests, client.busy_waits) == (5, 2)


def test_paced_one_request_per_second_through_the_cli(sample_covers, tmp_path):
    """The real pacing, through the CLI: one request per second to each service (the cover fetcher's pacing runs
    on its event loop's clock, so this one waits for real: about 4 s)."""
    with FakeMusicBrainz() as mb, FakeCoverArt() as caa:
        fill(mb, caa, sample_covers)
        env = {"SCORER_MUSICBRAINZ_URL": mb.base, "SCORER_COVERART_URL": caa.base}
        result = CliRunner().invoke(app, ["dataset", "musicbrainz", "--genre", "indie,rock", "--per-genre", "2",
                                          "--out", str(tmp_path / "set"), "--contact", CONTACT,
                                          "--allow-private-hosts", "--json"], env=env)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)
        assert summary["busy_waits"] == 0 and summary["complete"]
        assert {g: t["covers"] for g, t in summary["genres"].items()} == {"indie": 2, "rock": 2}
        assert mb.statuses() == [200, 200] and mb.too_fast == 0
        assert caa.too_fast == 0 and len(caa.log) == 4
        for log in (mb.log, caa.log):
            times = [t for t, *_ in log]
            assert min(b - a for a, b in zip(times, times[1:])) >= 0.95


def test_a_failed_cover_is_asked_again_and_a_missing_one_is_not(sample_covers, tmp_path):
    with FakeMusicBrainz(FAST) as mb, FakeCoverArt(FAST) as caa:
        ids = fill(mb, caa, sample_covers)
        caa.broken.add(ids["pop"]["C"])  # answers 500 through every retry
        first = build(mb, caa, tmp_path / "set", per_genre=5, per_artist=2, genres=["pop"])
        assert (first.genres["pop"].covers, first.genres["pop"].failed, first.genres["pop"].no_cover) == (4, 1, 1)
        assert not first.complete and first.genres["pop"].exhausted

        caa.broken.clear()
        caa.log.clear()
        second = build(mb, caa, tmp_path / "set", per_genre=5, per_artist=2, genres=["pop"])
        assert (second.genres["pop"].covers, second.genres["pop"].new, second.genres["pop"].failed) == (5, 1, 0)
        assert caa.asked() == [ids["pop"]["C"]]  # not the 404, not the covers already there
        assert second.searches == 0 and len(labels(tmp_path / "set")) == 5


def test_wrong_arguments_fail_before_any_request(tmp_path):
    with FakeMusicBrainz(FAST) as mb, FakeCoverArt(FAST) as caa:
        env = {"SCORER_MUSICBRAINZ_URL": mb.base, "SCORER_COVERART_URL": caa.base}
        base = ["dataset", "musicbrainz", "--out", str(tmp_path / "set"), "--allow-private-hosts"]
        cases = [
            ([*base, "--genre", "rock"], "--contact"),  # no contact
            ([*base, "--genre", "rock", "--contact", "me"], "e-mail address or an http(s) URL"),
            ([*base, "--genre", " , ", "--contact", CONTACT], "at least one --genre"),
            ([*base, "--genre", "hip hop,hip-hop", "--contact", CONTACT], "folder name"),
            ([*base, "--genre", "rock", "--contact", CONTACT, "--per-genre", "0"], "--per-genre"),
        ]
        for args, message in cases:
            result = CliRunner().invoke(app, args, env=env)
            assert result.exit_code == 2 and message in result.output, (args, result.output)
        fast = CliRunner().invoke(app, [*base, "--genre", "rock", "--contact", CONTACT, "--interval", "0.2"],
                                  env={"SCORER_MUSICBRAINZ_URL": None, "SCORER_COVERART_URL": None})
        assert fast.exit_code == 2 and "musicbrainz.org allows one request per second" in fast.output
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "notes.txt").write_text("mine")
        taken = CliRunner().invoke(app, [*base[:2], "--out", str(tmp_path / "other"), "--genre", "rock",
                                         "--contact", CONTACT], env=env)
        assert taken.exit_code == 2 and "did not write" in taken.output
        assert mb.log == [] and caa.log == []
        assert not (tmp_path / "set").exists()


def test_a_set_goes_on_only_with_its_own_genres(sample_covers, tmp_path):
    with FakeMusicBrainz(FAST) as mb, FakeCoverArt(FAST) as caa:
        fill(mb, caa, sample_covers)
        build(mb, caa, tmp_path / "set", per_genre=1, genres=["indie", "rock"])
        with pytest.raises(UsageError, match="holds a set of indie, rock"):
            build(mb, caa, tmp_path / "set", per_genre=2, genres=["indie", "pop"])
        more = build(mb, caa, tmp_path / "set", per_genre=3, genres=["rock", "indie"])  # order does not matter
        assert {g: t.covers for g, t in more.genres.items()} == {"rock": 3, "indie": 3}
        assert {g: t.new for g, t in more.genres.items()} == {"rock": 2, "indie": 2}


def test_killed_run_resumes_and_asks_for_nothing_twice(sample_covers, tmp_path):
    """SIGKILL part-way; the same command again finishes the set, which equals an uninterrupted run's, and asks
    neither service for anything the killed run had already recorded."""
    with FakeMusicBrainz(0.2) as mb, FakeCoverArt(0.2) as caa:
        fill(mb, caa, sample_covers)
        env = {**os.environ, "SCORER_MUSICBRAINZ_URL": mb.base, "SCORER_COVERART_URL": caa.base}

        def command(out: Path) -> list[str]:
            return [sys.executable, "-m", "scorer.cli", "dataset", "musicbrainz", "-g", "indie", "-g", "rock", "-g",
                    "pop", "--per-genre", "4", "--per-artist", "2", "--out", str(out), "--contact", CONTACT,
                    "--interval", "0.2", "--allow-private-hosts", "--no-cache", "--json"]

        whole = tmp_path / "whole"
        r = subprocess.run(command(whole), env=env, cwd=REPO, capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr

        mb.log.clear()
        caa.log.clear()
        killed = tmp_path / "killed"
        proc = subprocess.Popen(command(killed), env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        journal = killed / ".musicbrainz.jsonl"
        wait_for(lambda: journal.exists() and journal.read_text().count('"event": "cover"') >= 5,
                 "5 covers in the journal", proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        events = [json.loads(line) for line in journal.read_text().splitlines() if line.endswith("}")]
        decided = {e["mbid"] for e in events if e["event"] in ("cover", "no_cover")}
        searched = {(e["genre"], e["offset"]) for e in events if e["event"] == "page"}
        assert 5 <= sum(e["event"] == "cover" for e in events) < 12  # killed part-way
        asked_before, searches_before = len(caa.log), len(mb.log)

        r = subprocess.run(command(killed), env=env, cwd=REPO, capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        resumed = json.loads(r.stdout)
        assert resumed["complete"] and sum(t["new"] for t in resumed["genres"].values()) == 12 - sum(
            e["event"] == "cover" for e in events)
        asked_again = {path.split("/")[2] for _, path, _, status, _ in caa.log[asked_before:] if status != 503}
        assert not asked_again & decided
        again = {(_genre(q), int(q.split("offset=")[1].split("&")[0])) for _, _, q, _, _ in mb.log[searches_before:]}
        assert not again & searched

        assert labels(killed) == labels(whole)
        for row in labels(whole):
            assert (killed / row["path"]).read_bytes() == (whole / row["path"]).read_bytes()
        assert not list(killed.rglob("*.tmp"))


def _genre(query: str) -> str:
    return requests.utils.unquote(query).split('tag:"')[1].split('"')[0]


def test_build_then_train_then_score_a_catalog(spotify_dir, tmp_path, monkeypatch):
    """The README's path: build a set, train on it grouped by artist, score with --keep indie."""
    # a cache of its own: the covers and features it computes stay out of the other tests' shared cache
    monkeypatch.setenv("SCORER_CACHE_DIR", str(tmp_path / "cache"))
    stores = {"indie": "classical", "rock": "metal", "pop": "hiphop"}  # covers that differ by genre
    with FakeMusicBrainz(FAST) as mb, FakeCoverArt(FAST) as caa:
        held_out = []
        for genre, folder in stores.items():
            covers = sorted((spotify_dir / folder).glob("*.jpg"))
            for i, cover in enumerate(covers[:14]):
                caa.set_cover(mb.add(f"{genre} {i}", f"{genre} artist {i // 2}", {genre: 2}), cover)
            held_out += covers[20:23]
        summary = build(mb, caa, tmp_path / "set", per_genre=12)
    assert {g: t.covers for g, t in summary.genres.items()} == {"indie": 12, "rock": 12, "pop": 12}

    model = tmp_path / "model"
    result = CliRunner().invoke(app, ["train", str(tmp_path / "set"), "--group-by", "artist_mbid", "--folds", "3",
                                      "--out", str(model), "--name", "mb-mini"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["genres"] == ["indie", "pop", "rock"]
    assert manifest["training_set"]["images"] == 36
    assert manifest["training_set"]["grouping"]["artists"]["known"] == 18  # 6 artists per genre, two albums each

    catalog = tmp_path / "catalog.csv"
    catalog.write_text("cover_url\n" + "".join(f"{p}\n" for p in held_out))
    out = tmp_path / "scored.parquet"
    result = CliRunner().invoke(app, ["catalog", str(catalog), "--out", str(out), "--model", str(model),
                                      "--keep", "indie"])
    assert result.exit_code == 0, result.output
    df = pq.read_table(out).to_pandas()
    assert len(df) == 9 and (df.status == "ok").all()
    assert set(df.genre) <= {"indie", "pop", "rock"}
    assert (df.kept == (df.genre == "indie")).all()
    assert (df.genre == "indie").iloc[:3].sum() >= 2  # classical covers, which the model learned as indie
