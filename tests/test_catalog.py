"""``scorer catalog`` end to end: real covers in, one output row per input row, arguments checked first.

The CLI runs in-process (``CliRunner``) with the shipped model; nothing of the project is faked.
The only stand-in is the outside world: HTTP covers come from a real aiohttp server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import csv
import json
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web
from typer.testing import CliRunner

from scorer.cli import app
from scorer.cli.demo import draw_covers
from scorer.model import Model
from scorer.sinks import read_metadata

FIELDS = ["id", "title", "artist", "year", "cover_url"]
#: Broken rows by id, with the status each must get.
BROKEN = {"lost": "not_found", "html": "not_an_image", "cut": "decode_error", "nourl": "missing_url"}
HTML = b"<!doctype html><html><head><title>Not a cover</title></head><body><p>Album page</p></body></html>\n"


# --------------------------------------------------------------------------------------------- helpers


def invoke(*args: object):
    return CliRunner().invoke(app, ["catalog", *map(str, args)])


def score(*args: object) -> list[dict]:
    """Run ``scorer catalog`` (args include ``--out``) and return the written rows."""
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    out = Path(str(args[list(map(str, args)).index("--out") + 1]))
    return pq.read_table(out).to_pylist()


def write_csv(path: Path, rows: list[dict], fields: list[str] = FIELDS) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


def probs(row: dict, genres: list[str]) -> np.ndarray:
    return np.array([row[f"p_{g}"] for g in genres], dtype=np.float64)


def check_ok_row(row: dict, genres: list[str]) -> None:
    assert row["status"] == "ok", row
    assert row["error"] is None
    p = probs(row, genres)
    assert np.all((p >= 0) & (p <= 1)), row
    assert p.sum() == pytest.approx(1.0, abs=1e-4)
    assert row["genre"] in genres
    assert row["genre"] == genres[int(p.argmax())]
    assert row["genre_prob"] == pytest.approx(p.max(), abs=1e-6)
    assert 0.0 <= row["familiarity"] <= 1.0, row


def check_failed_row(row: dict, genres: list[str], status: str) -> None:
    assert row["status"] == status, row
    assert isinstance(row["error"], str) and row["error"].strip(), row
    assert row["genre"] is None and row["genre_prob"] is None and row["familiarity"] is None
    assert all(row[f"p_{g}"] is None for g in genres), row
    assert row["kept"] is False


# -------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model() -> Model:
    return Model()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A folder with drawn JPEG covers, broken files, and the catalog rows (good and broken, interleaved)."""
    folder = tmp_path_factory.mktemp("catalog")
    covers = folder / "covers"
    covers.mkdir()
    good = draw_covers(covers, 6, seed=1000, size=320)
    (covers / "page.jpg").write_bytes(HTML)
    whole = good[0].read_bytes()
    (covers / "truncated.jpg").write_bytes(whole[: len(whole) // 2])

    def row(id_: str, url: str, n: int) -> dict:
        return {"id": id_, "title": f"Title {n}", "artist": f"Artist {n}", "year": str(1990 + n), "cover_url": url}

    rows = [
        row("007", f"covers/{good[0].name}", 0),  # leading zeros must survive
        row("lost", "covers/missing.jpg", 1),
        row("a2", f"covers/{good[1].name}", 2),
        row("html", "covers/page.jpg", 3),
        row("a3", str(good[2]), 4),  # absolute path
        row("cut", "covers/truncated.jpg", 5),
        row("a4", f"covers/{good[3].name}", 6),
        row("nourl", "", 7),
        row("a5", f"covers/{good[4].name}", 8),
        row("a6", f"covers/{good[5].name}", 9),
    ]
    return folder, rows


@pytest.fixture(scope="module")
def catalog_csv(catalog) -> Path:
    folder, rows = catalog
    return write_csv(folder / "catalog.csv", rows)


@pytest.fixture(scope="module")
def scored_csv(catalog_csv, tmp_path_factory) -> tuple[list[dict], Path]:
    out = tmp_path_factory.mktemp("scored") / "scored.parquet"
    return score(catalog_csv, "--out", out), out


@pytest.fixture(scope="module")
def real_catalog(covers_dir, sample_covers, tmp_path_factory) -> Path:
    """Real album covers (two per genre, absolute paths) plus one broken row."""
    folder = tmp_path_factory.mktemp("real")
    rows = [{"id": f"r{i}", "title": p.stem, "artist": p.parent.name, "year": "", "cover_url": str(p)}
            for i, p in enumerate(sample_covers[::4])]
    rows.insert(3, {"id": "lost", "title": "", "artist": "", "year": "", "cover_url": str(folder / "nope.jpg")})
    return write_csv(folder / "real.csv", rows)


@pytest.fixture(scope="module")
def cover_server(catalog):
    """A real HTTP server on 127.0.0.1 (own event loop in a thread); yields (base URL, hit counter)."""
    folder, _ = catalog
    jpeg = next((folder / "covers").glob("neon-night*.jpg")).read_bytes()
    hits: Counter = Counter()

    async def count(request: web.Request, handler):
        hits[request.path] += 1
        return await handler(request)

    async def cover(_):
        return web.Response(body=jpeg, content_type="image/jpeg")

    async def gone(_):
        return web.Response(status=404, text="no such cover")

    async def broken(_):
        return web.Response(status=500, text="internal error")

    async def page(_):
        return web.Response(body=HTML, content_type="text/html")

    application = web.Application(middlewares=[web.middleware(count)])
    application.add_routes([web.get("/cover.jpg", cover), web.get("/gone.jpg", gone),
                            web.get("/broken.jpg", broken), web.get("/page.jpg", page)])
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(application)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(autouse=True)
def _no_proxy(no_proxy):
    """Every test here talks to loopback servers."""


# ------------------------------------------------------------------------------------------------ tests


def test_every_row_scored_or_explained_in_input_order(catalog, scored_csv, model):
    _, rows = catalog
    out_rows, out = scored_csv
    genres = model.genres
    assert len(out_rows) == len(rows)
    assert [r["id"] for r in out_rows] == [r["id"] for r in rows]
    started = datetime.now(timezone.utc)
    for src, got in zip(rows, out_rows):
        for col in FIELDS:  # passthrough: every input column kept with its value (CSV is read as text)
            assert got[col] == src[col], (col, src, got)
        if src["id"] in BROKEN:
            check_failed_row(got, genres, BROKEN[src["id"]])
        else:
            check_ok_row(got, genres)
            assert got["kept"] is True  # no --keep: every scored row is kept
        assert got["head"] == model.default_head
        assert got["model_version"] == model.version
        assert got["scored_at"].tzinfo is not None
        assert started - timedelta(minutes=10) < got["scored_at"] <= started

    meta = read_metadata(out)
    assert meta["genres"] == genres
    assert meta["head"] == model.default_head
    assert meta["model"]["version"] == model.manifest["version"]
    assert meta["model_version"] == model.version == f"{model.manifest['version']}+{model.precision}"
    assert meta["precision"] == model.precision
    assert meta["model"]["genres"] == genres
    assert {r["model_version"] for r in out_rows} == {meta["model_version"]}

    schema = pq.read_schema(out)
    assert schema.names == [*FIELDS, "status", "error", "genre", "genre_prob", "familiarity",
                            *(f"p_{g}" for g in genres), "kept", "head", "model_version", "scored_at"]
    assert schema.field("p_rock").type == pa.float32()
    assert schema.field("kept").type == pa.bool_()
    assert schema.field("scored_at").type == pa.timestamp("us", tz="UTC")


def test_jsonl_and_parquet_inputs_score_like_csv(catalog, scored_csv, model, tmp_path):
    folder, rows = catalog
    csv_rows, _ = scored_csv
    jsonl = folder / "catalog.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    parquet_in = folder / "catalog.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet_in)

    for source in (jsonl, parquet_in):
        got = score(source, "--out", tmp_path / f"{source.suffix[1:]}.parquet")
        assert len(got) == len(csv_rows), source
        for a, b in zip(csv_rows, got):
            assert (b["id"], b["title"], b["status"], b["genre"]) == (a["id"], a["title"], a["status"], a["genre"])
            if a["status"] == "ok":
                np.testing.assert_allclose(probs(b, model.genres), probs(a, model.genres), atol=1e-5)
            else:
                check_failed_row(b, model.genres, a["status"])


def test_keep_top_genre(real_catalog, model, tmp_path):
    out_rows = score(real_catalog, "--out", tmp_path / "kept.parquet", "--keep", "Rock, pop")
    with open(real_catalog, newline="") as f:
        assert [r["id"] for r in out_rows] == [row["id"] for row in csv.DictReader(f)]
    ok = [r for r in out_rows if r["status"] == "ok"]
    assert len(ok) == len(out_rows) - 1
    for r in out_rows:
        if r["status"] == "ok":
            check_ok_row(r, model.genres)
            assert r["kept"] == (r["genre"] in {"rock", "pop"}), r
        else:
            assert r["kept"] is False
    # real covers of five genres, two of them kept: the filter keeps some and drops some
    assert {r["kept"] for r in ok} == {True, False}
    assert read_metadata(tmp_path / "kept.parquet")["keep"] == ["rock", "pop"]


def test_keep_takes_the_names_people_type(real_catalog, model, tmp_path):
    """Aliases from the model's manifest and case/spacing variants: Hip-Hop, rap and Heavy Metal."""
    assert {"hiphop", "metal"} <= set(model.genres)
    assert model.aliases["rap"] == "hiphop" and model.aliases["heavy metal"] == "metal"
    out_rows = score(real_catalog, "--out", tmp_path / "a.parquet", "--keep", "Hip-Hop,Heavy Metal,rap")
    assert read_metadata(tmp_path / "a.parquet")["keep"] == ["hiphop", "metal"]
    ok = [r for r in out_rows if r["status"] == "ok"]
    for r in ok:
        assert r["kept"] == (r["genre"] in {"hiphop", "metal"}), r
    same = score(real_catalog, "--out", tmp_path / "b.parquet", "--keep", "hiphop,metal")
    assert [r["kept"] for r in same] == [r["kept"] for r in out_rows]


def test_keep_with_min_prob(real_catalog, model, tmp_path):
    out_rows = score(real_catalog, "--out", tmp_path / "rock.parquet", "--keep", "rock", "--min-prob", "0.3")
    assert [r["id"] for r in out_rows if r["status"] != "ok"] == ["lost"]
    for r in out_rows:
        if r["status"] == "ok":
            assert r["kept"] == (np.float32(r["p_rock"]) >= np.float32(0.3)), r
        else:
            assert r["kept"] is False
    meta = read_metadata(tmp_path / "rock.parquet")
    assert (meta["keep"], meta["min_prob"]) == (["rock"], 0.3)

    # Summed over two genres: kept exactly where the written rock and pop columns reach the threshold,
    # which here keeps some rows and drops others
    def summed(r: dict) -> np.float32:
        return np.float32(r["p_rock"]) + np.float32(r["p_pop"])

    ok = [r for r in out_rows if r["status"] == "ok"]
    out_rows = score(real_catalog, "--out", tmp_path / "both.parquet", "--keep", "rock,pop", "--min-prob", "0.5")
    for r in out_rows:
        if r["status"] == "ok":
            assert r["kept"] == (summed(r) >= np.float32(0.5)), r
        else:
            assert r["kept"] is False
    expected = sum(summed(r) >= np.float32(0.5) for r in ok)
    assert sum(r["kept"] for r in out_rows) == expected and 0 < expected < len(ok)


def test_every_head_scores_and_is_recorded(catalog, model, tmp_path):
    folder, rows = catalog
    subset = rows[:5]  # three covers, a missing file and an HTML page
    small = write_csv(folder / "small.csv", subset)
    assert set(model.head_names) >= {"ensemble", model.default_head}
    matrices = {}
    for head in model.head_names:
        out = tmp_path / f"{head}.parquet"
        got = score(small, "--out", out, "--head", head)
        assert [r["id"] for r in got] == [r["id"] for r in subset]
        assert {r["head"] for r in got} == {head}
        assert read_metadata(out)["head"] == head
        ok = [r for r in got if r["id"] not in BROKEN]
        assert len(ok) == 3
        for r in ok:
            check_ok_row(r, model.genres)
        for r in got:
            if r["id"] in BROKEN:
                check_failed_row(r, model.genres, BROKEN[r["id"]])
        matrices[head] = np.stack([probs(r, model.genres) for r in ok])
    # --head really switches the classifier: no two heads give the same probabilities
    distinct = {m.round(6).tobytes() for m in matrices.values()}
    assert len(distinct) == len(matrices)


def test_http_covers(cover_server, model, tmp_path):
    base, hits = cover_server
    before = hits.copy()
    rows = [{"id": "ok", "cover_url": f"{base}/cover.jpg"},
            {"id": "404", "cover_url": f"{base}/gone.jpg"},
            {"id": "500", "cover_url": f"{base}/broken.jpg"},
            {"id": "html", "cover_url": f"{base}/page.jpg"},
            {"id": "ok2", "cover_url": f"{base}/cover.jpg?size=large"}]
    src = write_csv(tmp_path / "http.csv", rows, ["id", "cover_url"])
    got = score(src, "--out", tmp_path / "http.parquet", "--allow-private-hosts", "--retries", "1", "--no-cache")
    assert [r["id"] for r in got] == [r["id"] for r in rows]
    expected = {"ok": "ok", "404": "http_404", "500": "http_5xx", "html": "not_an_image", "ok2": "ok"}
    for r in got:
        if expected[r["id"]] == "ok":
            check_ok_row(r, model.genres)
        else:
            check_failed_row(r, model.genres, expected[r["id"]])
    np.testing.assert_allclose(probs(got[0], model.genres), probs(got[4], model.genres), atol=1e-6)
    served = hits - before
    # the 500 is retried once; nothing else is
    assert served == Counter({"/cover.jpg": 2, "/gone.jpg": 1, "/broken.jpg": 2, "/page.jpg": 1})


def test_loopback_refused_by_default(cover_server, model, tmp_path):
    """Without --allow-private-hosts a catalog cannot make scorer fetch from the machine itself."""
    base, hits = cover_server
    before = hits.copy()
    rows = [{"id": "a", "cover_url": f"{base}/cover.jpg"},
            {"id": "b", "cover_url": base.replace("127.0.0.1", "localhost") + "/cover.jpg"}]
    got = score(write_csv(tmp_path / "local.csv", rows, ["id", "cover_url"]), "--out", tmp_path / "o.parquet")
    assert [r["status"] for r in got] == ["blocked_address", "blocked_address"]
    assert "loopback" in got[0]["error"] and "loopback" in got[1]["error"]
    assert hits == before


# ------------------------------------------------------------------------------- argument checking


@pytest.fixture
def bad_inputs(catalog, cover_server, tmp_path) -> dict[str, Path]:
    """Catalogs for the usage-error cases. The valid ones point at the HTTP server, so any fetch shows."""
    folder, rows = catalog
    base, _ = cover_server
    http_rows = [*rows[:3], {**rows[0], "id": "net", "cover_url": f"{base}/cover.jpg"}]
    good = write_csv(tmp_path / "good.csv", http_rows)
    text = tmp_path / "catalog.txt"
    text.write_text(good.read_text())
    return {
        "good": good,
        "nourl": write_csv(tmp_path / "nourl.csv", [{"id": "1", "url": f"{base}/cover.jpg"}], ["id", "url"]),
        "status": write_csv(tmp_path / "status.csv", [{"id": "1", "cover_url": f"{base}/cover.jpg", "status": "x"}],
                            ["id", "cover_url", "status"]),
        "txt": text,
        "absent": tmp_path / "absent.csv",
    }


def _case(name: str, inputs: dict[str, Path], out: Path, model: Model) -> tuple[list, list[str]]:
    """Arguments for one invalid invocation, and the fragments its error message must contain."""
    good = inputs["good"]
    return {
        "unknown-genre": ([good, "--out", out, "--keep", "rock,indie"],
                          ["unknown genre(s) in --keep: indie", ", ".join(model.genres), "train a model on labelled "
                           "covers of it", "scorer dataset musicbrainz", "Training on your own covers"]),
        "unknown-head": ([good, "--out", out, "--head", "cnn-forest"], ["cnn-forest", *model.head_names]),
        "min-prob-range": ([good, "--out", out, "--keep", "rock", "--min-prob", "1.5"],
                           ["--min-prob", "1.5", "between 0 and 1"]),
        "min-prob-without-keep": ([good, "--out", out, "--min-prob", "0.5"], ["--min-prob", "--keep"]),
        "no-cover-url": ([inputs["nourl"], "--out", out], ["cover_url", "found: id, url"]),
        "absent-input": ([inputs["absent"], "--out", out], [str(inputs["absent"]), "no such file"]),
        "txt-input": ([inputs["txt"], "--out", out], [".txt", ".csv", ".jsonl", ".parquet"]),
        "out-not-parquet": ([good, "--out", out.with_suffix(".csv")], [str(out.with_suffix(".csv")), ".parquet"]),
        "status-clash": ([inputs["status"], "--out", out], ["status", "overwritten", "rename"]),
    }[name]


@pytest.mark.parametrize("case", ["unknown-genre", "unknown-head", "min-prob-range", "min-prob-without-keep",
                                  "no-cover-url", "absent-input", "txt-input", "out-not-parquet", "status-clash"])
def test_invalid_arguments_fail_before_any_work(case, bad_inputs, cover_server, model, tmp_path):
    _, hits = cover_server
    before = hits.copy()
    out_dir = tmp_path / "out"
    args, fragments = _case(case, bad_inputs, out_dir / "scored.parquet", model)
    result = invoke(*args, "--allow-private-hosts")  # so that a premature fetch would reach the server
    assert result.exit_code == 2, result.output
    message = result.stderr
    assert message.startswith("error: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "Traceback" not in result.output
    assert not out_dir.exists()  # no output file, no temporary file, not even the folder
    assert hits == before  # nothing was fetched


def test_failed_run_leaves_old_output_untouched_and_success_leaves_no_temp(catalog, catalog_csv, tmp_path):
    out = tmp_path / "scored.parquet"
    pq.write_table(pa.table({"old": ["previous run"]}), out)
    old = out.read_bytes()

    result = invoke(catalog_csv, "--out", out, "--keep", "polka")
    assert result.exit_code == 2
    assert out.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored.parquet"]

    rows = score(catalog_csv, "--out", out)
    assert [r["id"] for r in rows] == [r["id"] for r in catalog[1]]
    assert "old" not in pq.read_schema(out).names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored.parquet"]  # no .tmp left behind


def test_empty_catalog_writes_empty_parquet_with_full_schema(model, tmp_path):
    src = tmp_path / "empty.csv"
    src.write_text("id,title,cover_url\n")
    out = tmp_path / "scored.parquet"
    result = invoke(src, "--out", out)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows == 0
    genres = model.genres
    assert table.schema.names == ["id", "title", "cover_url", "status", "error", "genre", "genre_prob", "familiarity",
                                  *(f"p_{g}" for g in genres), "kept", "head", "model_version", "scored_at"]
    types = {f.name: f.type for f in table.schema}
    assert all(types[c] == pa.string() for c in ("id", "title", "cover_url", "status", "error", "genre", "head"))
    assert all(types[c] == pa.float32() for c in ("genre_prob", "familiarity", *(f"p_{g}" for g in genres)))
    assert types["kept"] == pa.bool_()
    assert types["scored_at"] == pa.timestamp("us", tz="UTC")
    assert read_metadata(out)["genres"] == genres
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "scored.parquet"]


def test_jsonl_with_every_cover_url_null_gives_missing_url_rows(tmp_path):
    src = tmp_path / "nulls.jsonl"
    src.write_text('{"id": "a", "cover_url": null}\n{"id": "b", "cover_url": null}\n')
    rows = score(src, "--out", tmp_path / "scored.parquet")
    assert [(r["id"], r["status"]) for r in rows] == [("a", "missing_url"), ("b", "missing_url")]
