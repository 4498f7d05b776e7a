"""``scorer playlist`` end to end: spotipy against a fake Spotify Web API, covers from a loopback CDN.

Both servers are real aiohttp.web servers on 127.0.0.1 speaking the real protocols; the shipped model
scores real covers (served by the CDN at the album image URLs the fake API hands out).
"""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest
from fakes.spotify_api import FakeSpotify
from typer.testing import CliRunner

from scorer.cli import app
from scorer.model import Model
from scorer.services.spotify import USER_SCOPES
from scorer.sinks import read_metadata

SECRET = "app-secret-never-printed-42"
PLAYLIST = "1AbCdEfGhIjKlMnOpQrStU"
EDITORIAL = "37i9dQZF1DXcBWIGoYBM5M"


@pytest.fixture(autouse=True)
def _no_proxy(no_proxy):
    """Every test here talks to loopback servers."""


@pytest.fixture
def spotify(cdn, monkeypatch, tmp_path):
    # an app from before Spotify's 2026 changes: its app credentials still read a public playlist's items
    with FakeSpotify(client_secret=SECRET, cover_base=f"{cdn.base}/img", owner_only_items=False) as fake:
        monkeypatch.setenv("SCORER_SPOTIFY_API_URL", fake.api_url)
        monkeypatch.setenv("SCORER_SPOTIFY_ACCOUNTS_URL", fake.accounts_url)
        monkeypatch.setenv("SPOTIPY_CLIENT_ID", fake.client_id)
        monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", SECRET)
        monkeypatch.setenv("SCORER_CONFIG_DIR", str(tmp_path / "config"))
        yield fake


def build_playlist(fake: FakeSpotify, owner: str = "listener") -> list[dict]:
    """60 entries: 24 albums (most with several tracks), a local file, an episode, a removed track."""
    albums = [(f"album-{a}", f"{a:022d}"[-22:].replace("0", "A")) for a in range(24)]
    items = []
    for i in range(57):
        name, album_id = albums[i % len(albums)]
        items.append(fake.entry(fake.track(f"Song {i}", [f"Artist {i % 7}", "Guest"], name, album_id=album_id),
                                key="track" if i % 5 == 0 else "item"))
    items.insert(10, fake.entry(fake.local_track("Home demo", "Me", "Tapes"), key="track"))
    items.insert(20, fake.entry(fake.episode("Talk", "A podcast")))
    items.insert(30, None)
    fake.add_playlist(PLAYLIST, "Road trip", items, owner=owner)
    fake.rate_limit(PLAYLIST, offset=50, retry_after="1")
    return items


def invoke(*args):
    return CliRunner().invoke(app, ["playlist", *map(str, args)])


def test_playlist_prints_the_table_and_writes_parquet(spotify, cdn, tmp_path):
    build_playlist(spotify)
    model = Model()
    out = tmp_path / "road-trip.parquet"
    before = cdn.hits.copy()
    result = invoke(f"https://open.spotify.com/playlist/{PLAYLIST}?si=abc123", "--keep", "rock,pop",
                    "--out", out, "--allow-private-hosts")
    assert result.exit_code == 0, result.output
    assert "Road trip" in result.output and "Song 0" in result.output and "local_file" in result.output
    assert SECRET not in result.output

    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 60  # one row per playlist entry
    assert [r["position"] for r in rows] == list(range(60))
    assert {r["source"] for r in rows} == {"spotify"}
    by_status = {r["position"]: r["status"] for r in rows if r["status"] != "ok"}
    assert by_status == {10: "local_file", 20: "not_a_track", 30: "not_a_track"}
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 57
    for r in ok:
        for col in ("track_id", "title", "artist", "album", "album_id", "cover_url", "added_at"):
            assert r[col], (col, r)
        assert r["cover_url"].startswith(f"{cdn.base}/img/image/")
        assert r["genre"] in model.genres and r["kept"] == (r["genre"] in ("rock", "pop"))
        assert abs(sum(r[f"p_{g}"] for g in model.genres) - 1) < 1e-4
    assert rows[0]["artist"] == "Artist 0, Guest"
    # the 300 px image is picked (closest to the featurizer's 224 px), and tracks of one album agree
    assert all(r["cover_url"] == spotify.images(r["album_id"])[1]["url"] for r in ok)
    per_album = {}
    for r in ok:
        per_album.setdefault(r["album_id"], set()).add(r["p_rock"])
    assert all(len(v) == 1 for v in per_album.values())
    # each distinct cover fetched once, though 57 tracks share 24 covers
    served = cdn.hits - before
    assert sum(n for p, n in served.items() if p.startswith("/img/image/")) == 24
    assert all(n == 1 for p, n in served.items() if p.startswith("/img/image/"))
    meta = read_metadata(out)
    assert meta["playlist"]["name"] == "Road trip" and meta["distinct_covers"] == 24
    # pages came from /items (the 429 page waited out), never the old /tracks path
    item_pages = [r for r in spotify.requests if r.path.endswith(f"/playlists/{PLAYLIST}/items")]
    # 57 tracks in pages of 50 (offsets 0 and 50), and the 429 on offset 50 asked again
    assert [r.status for r in item_pages] == [200, 429, 200]
    assert not [r for r in spotify.requests if r.path.endswith("/tracks")]


def test_editorial_playlist_is_explained(spotify, tmp_path):
    result = invoke(f"spotify:playlist:{EDITORIAL}", "--out", tmp_path / "x.parquet")
    assert result.exit_code == 1
    message = result.stderr
    assert "37i9dQZF1" in message and "editorial" in message.lower()
    assert "your own" in message  # says what works instead
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize(("arg", "fragment"), [
    ("https://open.spotify.com/album/4aawyAB9vmqN3uQ7FjRGTy", "album"),
    ("not-a-playlist", "spotify:playlist:"),
])
def test_bad_ids_fail_before_any_request(spotify, arg, fragment):
    result = invoke(arg)
    assert result.exit_code == 2 and fragment in result.stderr
    assert spotify.requests == []


def test_bad_arguments_fail_before_any_request(spotify, tmp_path):
    result = invoke(PLAYLIST, "--keep", "polka")
    assert result.exit_code == 2 and "polka" in result.stderr
    result = invoke(PLAYLIST, "--out", tmp_path / "x.csv")
    assert result.exit_code == 2 and ".parquet" in result.stderr
    assert spotify.requests == []


def test_missing_credentials(spotify, monkeypatch):
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET")
    result = invoke(PLAYLIST)
    assert result.exit_code == 2 and "SPOTIPY_CLIENT_SECRET" in result.stderr
    assert spotify.requests == []


def test_save_playlist_of_kept_tracks(spotify, tmp_path):
    build_playlist(spotify)
    token = spotify.issue_user_token(("playlist-read-private", "playlist-read-collaborative",
                                      "playlist-modify-private", "playlist-modify-public"))
    cache = tmp_path / "token.json"
    cache.write_text(json.dumps({**token, "expires_at": int(time.time()) + 3600}))
    cache.chmod(0o600)
    out = tmp_path / "kept.parquet"
    result = invoke(PLAYLIST, "--keep", "rock,pop,country", "--save-playlist", "Kept by scorer", "--token-cache",
                    cache, "--allow-private-hosts", "--json", "--out", out)
    assert result.exit_code == 0, result.output
    assert token["access_token"] not in result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    kept = [r["track_id"] for r in pq.read_table(out).to_pylist() if r["kept"]]
    assert summary["kept_total"] == len(kept) > 0
    created = [r for r in spotify.requests if r.method == "POST" and r.path.endswith("/me/playlists")]
    assert len(created) == 1 and created[0].body["name"] == "Kept by scorer" and created[0].body["public"] is False
    added = [r for r in spotify.requests if r.method == "POST" and r.path.endswith("/items")]
    uris = [u for r in added for u in (r.body["uris"] if isinstance(r.body, dict) else r.body)]
    assert uris == [f"spotify:track:{t}" for t in kept]


def test_app_credentials_cannot_read_a_playlist_the_user_does_not_own(spotify, tmp_path):
    spotify.owner_only_items = True  # Spotify's rule for every app created today (the fake's default)
    build_playlist(spotify)
    out = tmp_path / "x.parquet"
    result = invoke(PLAYLIST, "--keep", "rock", "--out", out, "--allow-private-hosts")
    assert result.exit_code == 1
    assert "owns or collaborates on, and app credentials have no user: sign in with --user" in result.output
    assert "Deezer link" in result.output
    assert "Traceback" not in result.output and SECRET not in result.output and not out.exists()


@pytest.mark.parametrize("role", ["owner", "collaborator"])
def test_user_sign_in_reads_a_playlist_the_user_owns_or_collaborates_on(spotify, tmp_path, role):
    spotify.owner_only_items = True
    items = build_playlist(spotify, owner=spotify.user["id"] if role == "owner" else "someone")
    if role == "collaborator":
        spotify.playlists[PLAYLIST].collaborators = (spotify.user["id"],)
    cache = tmp_path / "token.json"
    cache.write_text(json.dumps(spotify.issue_user_token(USER_SCOPES)))
    cache.chmod(0o600)
    out = tmp_path / "mine.parquet"
    result = invoke(PLAYLIST, "--keep", "rock", "--user", "--token-cache", cache, "--out", out,
                    "--allow-private-hosts")
    assert result.exit_code == 0, result.output
    assert "Road trip" in result.output
    assert pq.read_table(out).num_rows == len(items)
