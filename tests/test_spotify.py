"""Spotify source: playlist links parsed, playlists read page by page, playlists saved, tokens kept private.

Nothing of ours is faked. The outside world is: Spotify's Web API and Accounts service are a real aiohttp
server on 127.0.0.1 (``fakes.spotify_api``) speaking the documented protocol, reached through spotipy.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import stat
import string
import threading
import time
from pathlib import Path

import pytest
import requests
from fakes.spotify_api import EDITORIAL_PREFIX as FAKE_EDITORIAL
from fakes.spotify_api import FakeSpotify, new_id
from hypothesis import example, given
from hypothesis import strategies as st
from waiting import join_all

from scorer.errors import STATUS_CODES
from scorer.filters import UsageError
from scorer.services.spotify import (
    EDITORIAL_PREFIX,
    USER_SCOPES,
    SpotifyAccessError,
    Track,
    is_editorial,
    make_client,
    parse_playlist_id,
    pick_cover,
    read_playlist,
    save_playlist,
)

BASE62 = string.digits + string.ascii_letters
ids = st.text(alphabet=BASE62, min_size=22, max_size=22)
SECRET = "s3cr3t-Client-Secret-0123456789"
PLAYLIST = "3cEYpjA9oz9GiPac4AsH4n"
FORMS = ("spotify:playlist:ID", "https://open.spotify.com/playlist/ID", "22 letters and digits")


# --------------------------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _no_proxy(no_proxy):
    """Every test here talks to loopback servers."""


@pytest.fixture
def fake(monkeypatch, tmp_path):
    # an app from before Spotify's 2026 changes (app credentials read public playlists' items); the tests of
    # the Development Mode rule, which the fake follows by default, turn it on
    with FakeSpotify(client_secret=SECRET, cover_base="http://127.0.0.1:9/cdn", owner_only_items=False) as server:
        monkeypatch.setenv("SCORER_SPOTIFY_API_URL", server.api_url.rstrip("/"))  # the slash is added for us
        monkeypatch.setenv("SCORER_SPOTIFY_ACCOUNTS_URL", server.accounts_url)
        monkeypatch.setenv("SPOTIPY_CLIENT_ID", server.client_id)
        monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", SECRET)
        monkeypatch.setenv("SPOTIPY_REDIRECT_URI", "http://127.0.0.1:8888/callback")
        monkeypatch.setenv("SCORER_CONFIG_DIR", str(tmp_path / "config"))
        yield server


def paths(fake: FakeSpotify, method: str | None = None) -> list[str]:
    return [r.path for r in fake.requests if method in (None, r.method)]


def write_token(path: Path, token: dict, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(token))
    path.chmod(mode)


# ------------------------------------------------------------------------------------ parse_playlist_id


@given(pid=ids, si=st.text(alphabet=BASE62 + "-_", max_size=24), intl=st.sampled_from(["", "intl-de/", "intl-PT/"]),
       scheme=st.sampled_from(["https://", "http://", "HTTPS://", ""]), slash=st.booleans(),
       fragment=st.sampled_from(["", "#top"]), pad=st.sampled_from(["", " ", "\t", "\n  "]))
def test_every_accepted_form_gives_the_id(pid, si, intl, scheme, slash, fragment, pad):
    query = f"?si={si}" if si else ""
    link = f"{scheme}open.spotify.com/{intl}playlist/{pid}{'/' if slash else ''}{query}{fragment}"
    for form in (pid, f"spotify:playlist:{pid}", link):
        assert parse_playlist_id(f"{pad}{form}{pad}") == pid


@given(raw=st.text(alphabet=BASE62, max_size=40).filter(lambda s: len(s) != 22))
def test_wrong_length_ids_are_refused_in_every_form(raw):
    for form in (raw, f"spotify:playlist:{raw}", f"https://open.spotify.com/playlist/{raw}"):
        with pytest.raises(UsageError) as err:
            parse_playlist_id(form)
        message = str(err.value)
        assert repr(form) in message and all(f in message for f in FORMS)


@given(pid=ids, kind=st.sampled_from(["album", "track", "artist", "episode", "show"]))
def test_other_spotify_types_are_named(pid, kind):
    article = "an" if kind[0] in "ae" else "a"
    for form in (f"spotify:{kind}:{pid}", f"https://open.spotify.com/{kind}/{pid}?si=x",
                 f"https://open.spotify.com/intl-fr/{kind}/{pid}"):
        with pytest.raises(UsageError, match=f"that is {article} {kind}, not a playlist"):
            parse_playlist_id(form)


@given(pid=ids, host=st.sampled_from(["spotify.com", "example.com", "open.spotify.com.evil.example",
                                      "open.spotify.com:8443", "me@open.spotify.com", "play.spotify.com"]),
       scheme=st.sampled_from(["https://", "ftp://", "javascript://"]))
def test_other_hosts_and_schemes_are_refused(pid, host, scheme):
    with pytest.raises(UsageError, match="not a Spotify playlist"):
        parse_playlist_id(f"{scheme}{host}/playlist/{pid}")


@given(text=st.text(max_size=80) | st.from_regex(r"(spotify:|https?://open\.spotify\.com/)[\w:/?#=\[\]@.-]{0,40}"))
@example("http://[open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M")
@example("https://open.spotify.com/play\nlist/37i9dQZF1DXcBWIGoYBM5M")
@example("spotify:playlist:37i9dQZF1DXcBWIGoYBM5M:extra")
def test_parser_gives_an_id_or_a_usage_error(text):
    try:
        pid = parse_playlist_id(text)
    except UsageError as e:
        assert "give a playlist ID" in str(e)
    else:
        assert re.fullmatch(r"[0-9A-Za-z]{22}", pid) and pid in text


@pytest.mark.parametrize("value", [None, 42, b"37i9dQZF1DXcBWIGoYBM5M"])
def test_parser_refuses_non_text(value):
    with pytest.raises(UsageError, match="as text"):
        parse_playlist_id(value)


def test_old_user_playlist_forms_and_editorial_ids():
    pid = "37i9dQZF1DXcBWIGoYBM5M"
    assert parse_playlist_id(f"spotify:user:spotify:playlist:{pid}") == pid
    assert parse_playlist_id(f"https://open.spotify.com/user/spotify/playlist/{pid}") == pid
    assert is_editorial(pid) and not is_editorial(PLAYLIST)
    assert EDITORIAL_PREFIX == FAKE_EDITORIAL == "37i9dQZF1"


# ------------------------------------------------------------------------------------------ pick_cover


def test_pick_cover():
    spotify = [{"url": "L", "width": 640, "height": 640}, {"url": "M", "width": 300, "height": 300},
               {"url": "S", "width": 64, "height": 64}]
    assert pick_cover(spotify) == "M"  # the smallest that is big enough
    assert pick_cover(list(reversed(spotify))) == "M"  # order does not matter
    assert pick_cover(spotify, size=64) == "S"
    assert pick_cover(spotify, size=301) == "L"
    assert pick_cover(spotify, size=1000) == "L"  # none big enough: the largest
    assert pick_cover([{"url": "wide", "width": 640, "height": 200}, {"url": "sq", "width": 250, "height": 250}]) \
        == "sq"  # the short side counts
    assert pick_cover([{"url": "a", "width": None, "height": None}, {"url": "b", "width": None, "height": None}]) \
        == "a"  # sizes unknown: the first
    assert pick_cover([{"url": "a", "width": None, "height": None}, {"url": "b", "width": 300, "height": 300}]) == "b"
    assert pick_cover([]) is None
    assert pick_cover([{"url": None, "width": 640, "height": 640}]) is None


# --------------------------------------------------------------------------------------- read_playlist

SPECIAL = {7: "local_file", 77: "not_a_track", 120: "not_a_track", 199: "no_cover"}


def build_playlist(fake: FakeSpotify, n: int = 250) -> list[dict | None]:
    """n entries; every third under the old ``track`` key; a local file, an episode, a removed track and an
    album without covers at the SPECIAL positions."""
    entries = []
    for i in range(n):
        key = "track" if i % 3 == 1 else "item"
        added = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T10:{i % 60:02d}:00Z"
        if i == 7:
            item = fake.local_track(f"Demo {i}", "Me", "Bedroom")
        elif i == 77:
            item = fake.episode(f"Episode {i}", "A Podcast")
        elif i == 120:
            item = None
        else:
            item = fake.track(f"Song {i}", [f"Artist {i}", "Guest"] if i % 5 == 0 else f"Artist {i}", f"Album {i}",
                              images=i != 199)
        entries.append(fake.entry(item, key=key, added_at=added))
    return entries


def test_read_playlist_every_entry_once_in_order(fake):
    entries = build_playlist(fake)
    fake.add_playlist(PLAYLIST, "Road trip", entries, owner="alice")
    fake.rate_limit(PLAYLIST, offset=50, retry_after="1")
    sp = make_client()
    started = time.monotonic()
    info, tracks = read_playlist(sp, f"https://open.spotify.com/playlist/{PLAYLIST}?si=abc")
    assert time.monotonic() - started >= 1.0  # Retry-After was waited out (a lower bound: load only adds to it)
    assert [r.status for r in fake.requests if r.path.endswith("/items") and r.query["offset"] == "50"] == [429, 200]

    assert info == {"id": PLAYLIST, "name": "Road trip", "owner": "Alice", "owner_id": "alice", "total": 250}
    assert [t.position for t in tracks] == list(range(250))
    for i, (track, entry) in enumerate(zip(tracks, entries)):
        assert isinstance(track, Track)
        item = entry.get("item") or entry.get("track")
        assert track.added_at == entry["added_at"]
        if i in SPECIAL:
            assert track.error is not None and track.error.code == SPECIAL[i], i
            assert track.error.code in STATUS_CODES and track.error.message
            assert track.cover_url is None
            continue
        assert track.error is None, (i, track.error)
        album = item["album"]
        assert track.track_id == item["id"] and track.title == f"Song {i}"
        assert track.artist == (f"Artist {i}, Guest" if i % 5 == 0 else f"Artist {i}")
        assert (track.album, track.album_id) == (f"Album {i}", album["id"])
        assert track.cover_url == f"http://127.0.0.1:9/cdn/image/{fake.cover_hash(album['id'], 300)}"
    # Entries that cannot be scored keep what is known about them.
    assert (tracks[7].title, tracks[7].artist, tracks[7].album) == ("Demo 7", "Me", "Bedroom")
    assert tracks[77].title == "Episode 77"
    assert tracks[199].title == "Song 199" and tracks[199].album_id

    pages = [r for r in fake.requests if r.path == f"/v1/playlists/{PLAYLIST}/items"]
    assert [(r.query["offset"], r.status) for r in pages] == [
        ("0", 200), ("50", 429), ("50", 200), ("100", 200), ("150", 200), ("200", 200)]
    assert all(r.query["limit"] == "50" and r.query["additional_types"] == "track,episode" for r in pages)
    assert not [p for p in paths(fake) if p.endswith("/tracks")]
    meta = [r for r in fake.requests if r.path == f"/v1/playlists/{PLAYLIST}"]
    assert len(meta) == 1 and "name" in meta[0].query["fields"]
    assert paths(fake).count("/api/token") == 1  # one app token for the whole run


def test_editorial_playlist_explains_what_works_instead(fake):
    pid = "37i9dQZF1DXcBWIGoYBM5M"
    fake.add_playlist(pid, "Discover Weekly", build_playlist(fake, 3), owner="spotify")  # exists, still 404
    with pytest.raises(SpotifyAccessError) as err:
        read_playlist(make_client(), pid)
    message = str(err.value)
    assert err.value.status == 404
    assert "37i9dQZF1" in message and "editorial" in message and "November 2024" in message
    assert "select all" in message and "playlist of your own" in message


def test_unknown_playlist_suggests_signing_in(fake):
    with pytest.raises(SpotifyAccessError, match=r"not found.*private.*--user"):
        read_playlist(make_client(), new_id())


def test_wrong_client_secret_is_a_clear_error_without_the_secret(fake, monkeypatch, caplog):
    wrong = "Wr0ng-" + SECRET
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", wrong)
    fake.add_playlist(PLAYLIST, "Mine", build_playlist(fake, 3))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SpotifyAccessError) as err:
        read_playlist(make_client(), PLAYLIST)
    message = str(err.value)
    assert "invalid_client" in message and "SPOTIPY_CLIENT_SECRET" in message
    basic = base64.b64encode(f"{fake.client_id}:{wrong}".encode()).decode()
    for text in (message, repr(err.value), caplog.text):
        assert wrong not in text and basic not in text
    assert not [p for p in paths(fake) if p.startswith("/v1/")]  # no API call without a token


def test_missing_credentials_are_a_usage_error_before_any_request(fake, monkeypatch):
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET")
    with pytest.raises(UsageError, match="set SPOTIPY_CLIENT_SECRET") as err:
        make_client()
    assert "SPOTIPY_CLIENT_ID" not in str(err.value)  # only what is missing is named
    monkeypatch.delenv("SPOTIPY_CLIENT_ID")
    with pytest.raises(UsageError, match="SPOTIPY_CLIENT_ID"):
        make_client(user=True)
    assert fake.requests == []


def test_tokens_and_secret_never_reach_the_logs(fake, caplog):
    fake.add_playlist(PLAYLIST, "Mine", build_playlist(fake, 60))
    caplog.set_level(logging.DEBUG)
    read_playlist(make_client(), PLAYLIST)
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # DEBUG logging was really on
    issued = fake.issued_tokens
    assert issued
    for secret in [SECRET, base64.b64encode(f"{fake.client_id}:{SECRET}".encode()).decode(), *issued]:
        assert secret not in caplog.text


def test_rate_limit_that_outlasts_retries_says_so(fake):
    fake.add_playlist(PLAYLIST, "Mine", build_playlist(fake, 60))
    fake.rate_limit(PLAYLIST, offset=0, retry_after="0", times=10)
    with pytest.raises(SpotifyAccessError, match="rate limited") as err:
        read_playlist(make_client(), PLAYLIST)
    assert err.value.status == 429
    assert [r.status for r in fake.requests if r.path.endswith("/items")] == [429] * 4  # 1 try + 3 retries


def test_a_retry_after_of_hours_fails_at_once(fake):
    fake.add_playlist(PLAYLIST, "Mine", build_playlist(fake, 60))
    fake.rate_limit(PLAYLIST, offset=50, retry_after="3600", times=5)
    raised: list[BaseException] = []

    def read() -> None:
        try:
            read_playlist(make_client(), PLAYLIST)
        except BaseException as e:  # noqa: BLE001 - checked below
            raised.append(e)

    reader = threading.Thread(target=read, name="read_playlist", daemon=True)
    reader.start()
    join_all([reader], "a playlist whose Retry-After asks for an hour (it must fail at once, not wait)")
    (err,) = raised
    assert isinstance(err, SpotifyAccessError) and err.status == 429
    assert re.search(r"rate limited.*Retry-After 3600", str(err)), str(err)
    # at once: the 429 was the last request, none waited for and retried after it
    assert [(r.query["offset"], r.status) for r in fake.requests if r.path.endswith("/items")] == [("0", 200),
                                                                                                    ("50", 429)]


def test_server_errors_on_reads_are_retried(fake):
    fake.add_playlist(PLAYLIST, "Mine", build_playlist(fake, 60))
    fake.fail("GET", f"/v1/playlists/{PLAYLIST}/items", status=502, times=2)
    _, tracks = read_playlist(make_client(), PLAYLIST)
    assert len(tracks) == 60
    assert [r.status for r in fake.requests if r.path.endswith("/items")] == [502, 502, 200, 200]


def test_development_mode_403_explains_the_owner_rule(fake):
    fake.owner_only_items = True
    fake.add_playlist(PLAYLIST, "Theirs", build_playlist(fake, 3), owner="someone")
    with pytest.raises(SpotifyAccessError, match=r"403.*owns or collaborates.*--user") as err:
        read_playlist(make_client(), PLAYLIST)
    assert err.value.status == 403


# -------------------------------------------------------------------------------------- user sign-in


def test_user_client_uses_the_cached_token(fake, tmp_path):
    fake.owner_only_items = True  # only the signed-in owner may read the items
    fake.add_playlist(PLAYLIST, "Private mix", build_playlist(fake, 30), owner=fake.user["id"])
    cache = tmp_path / "config" / "spotify-token.json"  # the default path under SCORER_CONFIG_DIR
    write_token(cache, fake.issue_user_token(USER_SCOPES))
    sp = make_client(user=True, open_browser=False)
    info, tracks = read_playlist(sp, PLAYLIST)
    assert info["owner_id"] == fake.user["id"] and len(tracks) == 30
    assert "/api/token" not in paths(fake)


def test_expired_token_is_refreshed_and_saved_privately(fake, tmp_path):
    fake.add_playlist(PLAYLIST, "Private mix", build_playlist(fake, 10), owner=fake.user["id"])
    cache = tmp_path / "tokens" / "spotify.json"
    old = fake.issue_user_token(USER_SCOPES, expires_in=-60)
    write_token(cache, old)
    _, tracks = read_playlist(make_client(user=True, cache_path=cache, open_browser=False), PLAYLIST)
    assert len(tracks) == 10
    assert paths(fake).count("/api/token") == 1
    saved = json.loads(cache.read_text())
    assert saved["access_token"] != old["access_token"] and saved["refresh_token"] != old["refresh_token"]
    assert saved["expires_at"] > time.time() + 3000
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert sorted(p.name for p in cache.parent.iterdir()) == ["spotify.json"]  # no temp files left
    # A second run uses the saved token as it is.
    read_playlist(make_client(user=True, cache_path=cache, open_browser=False), PLAYLIST)
    assert paths(fake).count("/api/token") == 1


def test_revoked_sign_in_says_to_sign_in_again(fake, tmp_path):
    fake.add_playlist(PLAYLIST, "Private mix", build_playlist(fake, 3), owner=fake.user["id"])
    cache = tmp_path / "spotify-token.json"
    token = fake.issue_user_token(USER_SCOPES, expires_in=-60)
    fake.revoke_refresh_tokens()
    write_token(cache, token)
    with pytest.raises(SpotifyAccessError, match=r"invalid_grant.*delete .*spotify-token.json.*--user"):
        read_playlist(make_client(user=True, cache_path=cache, open_browser=False), PLAYLIST)


def test_token_cache_refuses_a_file_others_can_read(fake, tmp_path, caplog):
    from scorer.services.spotify import TokenFileCache

    cache = tmp_path / "spotify-token.json"
    token = fake.issue_user_token(USER_SCOPES)
    write_token(cache, token, mode=0o640)
    handler = TokenFileCache(cache)
    with caplog.at_level(logging.WARNING):
        assert handler.get_cached_token() is None
        assert handler.get_cached_token() is None
    warnings = [r for r in caplog.records if "other users" in r.getMessage()]
    assert len(warnings) == 1  # once, although spotipy reads the cache before every request
    assert token["access_token"] not in caplog.text and token["refresh_token"] not in caplog.text
    cache.chmod(0o600)
    assert handler.get_cached_token() == token
    cache.write_text("{not json")
    assert handler.get_cached_token() is None


def test_sign_in_with_pkce_then_save_a_playlist(fake, tmp_path):
    """The whole authorization-code flow: consent page, redirect with code and state, code + verifier
    exchanged for tokens, which land in a new 0700 folder; then a playlist of 230 tracks is saved."""
    cache = tmp_path / "new" / "dir" / "spotify-token.json"
    sp = make_client(user=True, cache_path=cache, open_browser=False)
    auth = sp.auth_manager
    consent = requests.get(auth.get_authorize_url(), allow_redirects=False, timeout=5)
    assert consent.status_code == 302
    state, code = auth.parse_auth_response_url(consent.headers["Location"])
    assert state == auth.state and code
    auth.get_access_token(code, check_cache=False)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    assert set(json.loads(cache.read_text())["scope"].split()) == set(USER_SCOPES)

    catalog = [fake.track(f"Keep {i}", "Band", "LP")["id"] for i in range(230)]
    created = save_playlist(sp, "Kept by scorer", catalog, "Covers scored as jazz")
    assert created["name"] == "Kept by scorer" and created["public"] is False
    assert re.fullmatch(r"[0-9A-Za-z]{22}", created["id"])
    assert [p for p in paths(fake, "POST") if p.startswith("/v1/")] == (
        ["/v1/me/playlists"] + [f"/v1/playlists/{created['id']}/items"] * 3)
    adds = [r for r in fake.requests if r.path == f"/v1/playlists/{created['id']}/items"]
    assert [len(r.body if isinstance(r.body, list) else r.body["uris"]) for r in adds] == [100, 100, 30]
    assert all(r.status == 201 for r in adds)
    # Read back: the same tracks, in order.
    _, tracks = read_playlist(sp, created["id"])
    assert [t.track_id for t in tracks] == catalog


def test_save_playlist_does_not_retry_a_failed_add(fake, tmp_path):
    """A 5xx on POST may have added the tracks already; retrying could add them twice."""
    cache = tmp_path / "spotify-token.json"
    write_token(cache, fake.issue_user_token(USER_SCOPES))
    sp = make_client(user=True, cache_path=cache, open_browser=False)
    before = set(fake.playlists)
    fake.fail("POST", "/v1/me/playlists", status=503)
    with pytest.raises(SpotifyAccessError, match="503"):
        save_playlist(sp, "Kept", [new_id()], "")
    assert paths(fake, "POST") == ["/v1/me/playlists"] and set(fake.playlists) == before


def test_save_playlist_checks_its_arguments_first(fake, tmp_path):
    cache = tmp_path / "spotify-token.json"
    write_token(cache, fake.issue_user_token(USER_SCOPES))
    sp = make_client(user=True, cache_path=cache, open_browser=False)
    with pytest.raises(UsageError, match="not Spotify track IDs"):
        save_playlist(sp, "Kept", [new_id(), "spotify:track:nope"], "")
    with pytest.raises(UsageError, match="needs a name"):
        save_playlist(sp, "  ", [new_id()], "")
    assert fake.requests == []


def test_app_token_is_kept_in_memory_and_cannot_save(fake, tmp_path, monkeypatch):
    """spotipy's default cache handler would write the app token to ./.cache."""
    monkeypatch.chdir(tmp_path)
    fake.add_playlist(PLAYLIST, "Mine", build_playlist(fake, 3))
    sp = make_client()
    read_playlist(sp, PLAYLIST)
    with pytest.raises(SpotifyAccessError, match="401"):
        save_playlist(sp, "Kept", [new_id()], "")
    assert list(tmp_path.iterdir()) == []
