"""``scorer playlist`` on Deezer: the client against a fake of Deezer's public API, covers from a loopback CDN.

Both servers are real aiohttp.web servers on 127.0.0.1; the fake answers as api.deezer.com does (errors in
HTTP 200 bodies, the quota, paging), and the shipped model scores real covers the CDN serves.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from fakes.deezer_api import FakeDeezer
from typer.testing import CliRunner

from scorer.cli import app
from scorer.filters import UsageError
from scorer.runners.playlist import resolve
from scorer.services.deezer import QUOTA_WAIT_S, QUOTA_WAITS, DeezerAccessError, DeezerClient, parse_playlist_id
from scorer.sinks import read_metadata

PLAYLIST = 908622995


@pytest.fixture(autouse=True)
def _no_proxy(no_proxy):
    """Every test here talks to loopback servers."""


@pytest.fixture
def deezer(cdn, monkeypatch):
    with FakeDeezer(cover_base=f"{cdn.base}/img") as fake:
        monkeypatch.setenv("SCORER_DEEZER_API_URL", fake.base_url)
        yield fake


def build_playlist(fake: FakeDeezer) -> list[dict]:
    """130 tracks (two pages of 100) on 20 albums, one no longer readable, one album without a cover."""
    tracks = [fake.track(f"Song {i}", f"Artist {i % 6}", f"Album {i % 20}", album_id=100 + i % 20)
              for i in range(128)]
    tracks.insert(7, fake.track("Gone", "Someone", "Album 3", album_id=103, readable=False))
    tracks.insert(40, fake.track("Bare", "Nobody", "No Art", album_id=999, cover=False))
    fake.add_playlist(PLAYLIST, "Deezer mix", tracks, creator="dj")
    return tracks


def invoke(*args):
    return CliRunner().invoke(app, ["playlist", *map(str, args)])


@pytest.mark.parametrize("text", [f"https://www.deezer.com/fr/playlist/{PLAYLIST}",
                                  f"https://www.deezer.com/playlist/{PLAYLIST}?utm_source=share",
                                  f"deezer.com/en-gb/playlist/{PLAYLIST}", f"deezer:playlist:{PLAYLIST}",
                                  f"  http://www.deezer.com/playlist/{PLAYLIST}/  "])
def test_deezer_links(text):
    assert parse_playlist_id(text) == str(PLAYLIST)
    assert resolve(text) == ("deezer", str(PLAYLIST))


@pytest.mark.parametrize(("text", "message"), [
    ("https://www.deezer.com/fr/album/302127", "that is a Deezer album, not a playlist"),
    ("https://www.deezer.com/track/3135556", "that is a Deezer track, not a playlist"),
    ("https://link.deezer.com/s/30ABCdefG", "a Deezer share link, which only a browser resolves"),
    ("deezer:playlist:12ab", "not a Deezer playlist"),
    ("https://www.deezer.com/playlist/", "not a Deezer playlist"),
])
def test_bad_deezer_links_are_usage_errors(text, message):
    with pytest.raises(UsageError, match=message):
        resolve(text)


def test_unknown_forms_name_both_services():
    with pytest.raises(UsageError) as e:
        resolve("https://example.com/playlist/1")
    assert "not a Spotify playlist" in str(e.value) and "deezer.com/[xx/]playlist/ID" in str(e.value)


def test_deezer_playlist_prints_the_table_and_writes_parquet(deezer, cdn, tmp_path):
    tracks = build_playlist(deezer)
    out = tmp_path / "mix.parquet"
    before = cdn.hits.copy()
    result = invoke(f"https://www.deezer.com/fr/playlist/{PLAYLIST}", "--keep", "Hip-Hop,rock", "--out", out,
                    "--allow-private-hosts")
    assert result.exit_code == 0, result.output
    assert "Deezer mix by dj · 130 tracks, 20 distinct covers" in result.output
    df = pq.read_table(out).to_pandas()
    assert len(df) == len(tracks) and list(df.position) == list(range(len(tracks)))
    assert (df.source == "deezer").all()
    assert list(df.title) == [t["title"] for t in tracks]
    assert df.loc[df.title == "Bare", "status"].item() == "no_cover"
    assert df.loc[df.title == "Gone", "status"].item() == "ok"  # no longer playable, its album cover still is
    assert (df.status == "ok").sum() == len(tracks) - 1
    assert df.cover_url.dropna().str.endswith("-250x250.jpg").all()  # cover_medium: the smallest >= 224 px
    assert df.added_at.iloc[0] == "2026-01-01T00:00:00Z"
    assert set(df.loc[df.kept, "genre"]) <= {"hiphop", "rock"}
    served = cdn.hits - before
    assert len(served) == 20 and max(served.values()) == 1  # each distinct cover fetched once
    pages = [q for path, q in deezer.requests if path.endswith("/tracks")]
    assert [q["index"] for q in pages] == ["0", "100"] and {q["limit"] for q in pages} == {"100"}
    meta = read_metadata(out)
    assert meta["source"] == "deezer-playlist" and meta["playlist"]["name"] == "Deezer mix"
    assert meta["playlist"]["service"] == "deezer" and meta["playlist"]["owner"] == "dj"


def test_quota_answers_are_waited_out(deezer, tmp_path):
    build_playlist(deezer)
    deezer.quota_burst(1)  # the first request meets a used-up quota (another program on this IP)
    waits: list[float] = []
    client = DeezerClient(deezer.base_url, sleep=waits.append)  # the wait asked for, not waited for real
    assert client.get(f"playlist/{PLAYLIST}")["nb_tracks"] == 130
    assert waits == [QUOTA_WAIT_S] and deezer.quota_answers == 1


def test_quota_that_stays_exceeded_ends_in_a_message(deezer):
    build_playlist(deezer)
    deezer.quota_burst(1000)
    waits: list[float] = []
    client = DeezerClient(deezer.base_url, sleep=waits.append)
    with pytest.raises(DeezerAccessError, match="quota stayed exceeded"):
        client.get(f"playlist/{PLAYLIST}")
    assert waits == [QUOTA_WAIT_S] * QUOTA_WAITS and deezer.quota_answers == QUOTA_WAITS + 1


@pytest.mark.parametrize(("public", "message"), [
    (False, f"Deezer playlist {PLAYLIST} is private: Deezer's public API reads public playlists only"),
    (None, f"Deezer playlist {PLAYLIST} does not exist"),
])
def test_private_and_missing_playlists_are_messages(deezer, tmp_path, public, message):
    if public is not None:
        deezer.add_playlist(PLAYLIST, "Secret", [deezer.track("S", "A", "B")], public=public)
    out = tmp_path / "x.parquet"
    result = invoke(f"https://www.deezer.com/playlist/{PLAYLIST}", "--out", out)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("args", [["--user"], ["--save-playlist", "Kept"], ["--keep", "indie"],
                                  ["--out", "x.csv"]])
def test_bad_arguments_fail_before_any_request(deezer, args):
    build_playlist(deezer)
    result = invoke(f"https://www.deezer.com/playlist/{PLAYLIST}", *args)
    assert result.exit_code == 2, result.output
    assert deezer.requests == []
