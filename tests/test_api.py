"""The library: ``scorer.score`` and friends, pandas in and out, from threads and from a running asyncio loop.

Nothing of the project is faked. Covers are real (the shared Discogs sample); covers over HTTP come from a
real aiohttp server on 127.0.0.1 that answers 404 for what it does not have, as a CDN does. The README's
Python section is run as written, in a fresh interpreter, inside a running event loop (as Jupyter runs
code); only the outside world is swapped: its example host becomes the loopback server's address.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web
from fakes.loopback import LoopbackServer
from PIL import Image
from typer.testing import CliRunner
from waiting import join_all

import scorer
from scorer.cli import app
from scorer.errors import python_names

README = Path(__file__).resolve().parent.parent / "README.md"
HEAVY = ("numpy", "onnxruntime", "pandas", "pyarrow")


class Covers:
    """A CDN on 127.0.0.1 serving ``/<name>`` for the covers it holds, 404 for the rest; counts requests."""

    def __init__(self, files: dict[str, Path]):
        self.files = files
        self.hits: Counter = Counter()
        application = web.Application()
        application.add_routes([web.get("/{name:.+}", self.serve)])
        self.server = LoopbackServer(application, name="covers", handle_signals=False)
        self.base = f"http://127.0.0.1:{self.server.port}"

    async def serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[name] += 1
        if name not in self.files:
            return web.Response(status=404, text="no such cover")
        return web.Response(body=self.files[name].read_bytes(), content_type="image/jpeg")


@pytest.fixture(scope="module")
def store(sample_covers):
    server = Covers({"golden-hour.jpg": sample_covers[8], "night-drive.jpg": sample_covers[0]})
    yield server
    server.server.stop()


@pytest.fixture(scope="module")
def model():
    return scorer.load_model()


@pytest.fixture
def albums(tmp_path, sample_covers, store, no_proxy) -> pd.DataFrame:
    """Local files, URLs (one 404), an empty cell, a repeated cover and a repeated index label."""
    local = tmp_path / "covers"
    local.mkdir()
    for i, cover in enumerate(sample_covers[:4]):
        shutil.copy(cover, local / f"c{i}.jpg")
    return pd.DataFrame({
        "title": ["a", "b", "c", "d", "e", "f", "g"],
        "year": [1990, 1991, 1992, 1993, 1994, 1995, 1996],
        "cover_url": [str(local / "c0.jpg"), f"{store.base}/golden-hour.jpg", str(local / "c1.jpg"),
                      f"{store.base}/lost.jpg", None, str(local / "c0.jpg"), str(local / "nope.jpg")],
    }, index=[10, 11, 12, 13, 14, 15, 10])


# ------------------------------------------------------------------------------------------ import


def test_import_loads_nothing_heavy_and_leaves_the_environment_alone():
    code = ("import os, sys; before = dict(os.environ); import scorer; scorer.UsageError; scorer.__version__; "
            "print(sorted(m for m in " + repr(HEAVY) + " if m in sys.modules), dict(os.environ) == before)")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["[]", "True"]
    # the first call that needs them loads the rest; the environment stays as it was
    code = ("import os, sys, scorer; before = dict(os.environ); scorer.load_model(); "
            "print(dict(os.environ) == before, sorted(m for m in " + repr(HEAVY) + " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    same, loaded = out.stdout.split(maxsplit=1)
    assert same == "True" and "numpy" in loaded


def test_scoring_runs_blas_on_one_thread_and_restores_it(sample_covers, model):
    """numpy is loaded long before scoring: the limit is set with threadpoolctl while scoring, and undone."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from scorer.options import blas_threads

    def blas() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    with threadpool_limits(limits=2, user_api="blas"):
        assert blas() and set(blas()) == {2}
        with blas_threads(1):
            assert set(blas()) == {1}
        assert set(blas()) == {2}
        seen = [set(blas()) for _ in scorer.iter_scores(sample_covers[:4], model=model)]
        assert seen == [{2}]  # the caller's own work between chunks keeps its threads
        assert set(blas()) == {2}


def test_public_names_are_there_and_typed():
    assert set(scorer.__all__) - {"__version__"} == set(scorer._EXPORTS)
    for name in scorer._EXPORTS:
        assert getattr(scorer, name) is not None
    assert (Path(scorer.__file__).parent / "py.typed").is_file()
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        scorer.nope  # noqa: B018


# ------------------------------------------------------------------------------------------ score


def test_score_a_dataframe_one_row_per_row_as_scorer_catalog_does(albums, model, store, tmp_path):
    scored = scorer.score(albums, keep="rock,pop", model=model, allow_private_hosts=True)
    assert len(scored) == len(albums)
    assert list(scored.index) == list(albums.index)  # the index, repeated label included
    assert list(scored["title"]) == list(albums["title"]) and list(scored["year"]) == list(albums["year"])
    assert list(scored["status"]) == ["ok", "ok", "ok", "http_404", "missing_url", "ok", "not_found"]
    # the same rows through `scorer catalog`: the same columns, statuses and probabilities
    albums.to_csv(tmp_path / "albums.csv", index=False)
    result = CliRunner().invoke(app, ["catalog", str(tmp_path / "albums.csv"), "--out", str(tmp_path / "o.parquet"),
                                      "--keep", "rock,pop", "--allow-private-hosts"])
    assert result.exit_code == 0, result.output
    cli = pq.read_table(tmp_path / "o.parquet").to_pandas()
    assert list(scored.columns) == list(cli.columns)
    assert list(scored["status"]) == list(cli["status"]) and list(scored["kept"]) == list(cli["kept"])
    probs = [c for c in scored.columns if c.startswith("p_")]
    assert probs == [f"p_{g}" for g in model.genres]
    np.testing.assert_allclose(scored[probs].to_numpy(), cli[probs].to_numpy(), atol=1e-6)
    assert scored["model_version"].iloc[0] == model.version and scored["head"].iloc[0] == model.default_head
    run = scored.attrs["scorer"]
    assert run["summary"]["rows"] == 7 and run["summary"]["failed"] == {"http_404": 1, "missing_url": 1,
                                                                        "not_found": 1}
    assert run["summary"]["inferred"] == 3  # c0 twice: scored once
    assert run["keep"] == ["rock", "pop"] and run["genres"] == model.genres
    assert str(scored["scored_at"].dtype) == "datetime64[us, UTC]" and str(scored["p_rock"].dtype) == "float32"


def test_images_in_memory_score_as_their_files_do(sample_covers, model, tmp_path):
    png = tmp_path / "cover.png"  # PNG: decoded whole, as a PIL image or an array is
    Image.open(sample_covers[3]).convert("RGB").save(png)
    pil = Image.open(png)
    covers = [png, png.read_bytes(), pil, np.asarray(pil), bytearray(png.read_bytes()),
              np.zeros((8, 8, 3), np.float64), b"not an image", 42]
    scored = scorer.score(covers, model=model)
    assert list(scored.index) == list(range(8))
    assert list(scored["status"]) == ["ok"] * 5 + ["not_an_image", "not_an_image", "bad_url"]
    probs = scored[[f"p_{g}" for g in model.genres]].to_numpy()
    for row in range(1, 5):
        np.testing.assert_array_equal(probs[row], probs[0])
    assert "uint8" in scored["error"][5] and "(8, 8, 3)" in scored["error"][5]
    # the file, its bytes (bytes and bytearray alike: one), the PIL image, the array: equal covers scored once
    assert scored.attrs["scorer"]["summary"]["inferred"] == 4
    assert scored["cover_url"][0] == str(png) and scored["cover_url"][2] is pil  # what was given, as given


def test_a_catalog_file_in_chunks_as_frames_and_as_arrow(albums, model, tmp_path):
    albums.to_csv(tmp_path / "albums.csv", index=False)
    frames = scorer.iter_scores(tmp_path / "albums.csv", model=model, chunk_rows=3, allow_private_hosts=True)
    chunks = list(frames)
    assert [len(c) for c in chunks] == [3, 3, 1]
    whole = pd.concat(chunks)
    assert list(whole.index) == list(range(7))
    assert list(whole["status"]) == ["ok", "ok", "ok", "http_404", "missing_url", "ok", "not_found"]
    assert frames.summary.rows == 7 and frames.summary.scored == 4
    tables = list(scorer.iter_scores(albums, model=model, chunk_rows=4, arrow=True, allow_private_hosts=True))
    assert all(isinstance(t, pa.Table) for t in tables) and [t.num_rows for t in tables] == [4, 3]
    joined = pa.concat_tables(tables)
    assert joined.column("status").to_pylist() == list(whole["status"])
    assert joined.column_names == list(whole.columns)


def test_a_series_keeps_its_index_and_arrays_of_every_shape_are_covers(sample_covers, model):
    rgb = np.asarray(Image.open(sample_covers[5]).convert("RGB"))
    grey, rgba = rgb[..., 0].copy(), np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    series = pd.Series([rgb, grey, rgba, np.zeros((0, 4, 3), np.uint8), rgb[..., :2].copy()],
                       index=["rgb", "grey", "rgba", "empty", "two"])
    scored = scorer.score(series, model=model)
    assert list(scored.index) == ["rgb", "grey", "rgba", "empty", "two"]
    assert list(scored["status"]) == ["ok", "ok", "ok", "not_an_image", "not_an_image"]
    probs = scored[[f"p_{g}" for g in model.genres]].to_numpy()
    np.testing.assert_array_equal(probs[2], probs[0])  # an opaque alpha channel changes nothing
    assert not np.allclose(probs[1], probs[0])  # grey is grey
    assert "(0, 4, 3)" in scored["error"]["empty"] and "(H, W, 3) RGB" in scored["error"]["two"]


def test_a_generator_is_read_chunk_by_chunk(sample_covers, model):
    taken = []

    def covers():
        for i in range(10):
            taken.append(i)
            yield sample_covers[i]

    chunks = scorer.iter_scores(covers(), model=model, chunk_rows=4)
    first = next(chunks)
    assert list(first.index) == [0, 1, 2, 3] and len(taken) <= 8  # the first chunk, and at most the next
    rest = list(chunks)
    assert [list(c.index) for c in rest] == [[4, 5, 6, 7], [8, 9]]
    assert all((c["status"] == "ok").all() for c in [first, *rest])


def test_stopping_early_closes_the_fetcher(sample_covers, model):
    before = {t.name for t in threading.enumerate()}
    with scorer.iter_scores(sample_covers[:12], model=model, chunk_rows=4) as chunks:
        next(chunks)
    left = [t.name for t in threading.enumerate() if t.name not in before and t.name.startswith("scorer-")]
    assert left == []


def test_empty_input_gives_the_columns(model):
    scored = scorer.score(pd.DataFrame({"cover_url": [], "id": []}), model=model)
    assert len(scored) == 0 and {"id", "status", "kept", "p_rock"} <= set(scored.columns)
    assert len(scorer.score([], model=model)) == 0


# ------------------------------------------------------------------------------------------ errors


def test_usage_errors_say_what_the_command_line_says_before_any_fetch(albums, store, tmp_path):
    albums.to_csv(tmp_path / "albums.csv", index=False)
    hits = sum(store.hits.values())
    cases = [
        (dict(keep="indie"), ["--keep", "indie"]),
        (dict(head="nope"), ["--head", "nope"]),
        (dict(min_prob=0.5), ["--min-prob", "0.5"]),
        (dict(keep="rock", min_prob=1.5), ["--keep", "rock", "--min-prob", "1.5"]),
        (dict(precision="fp16"), ["--precision", "fp16"]),
        (dict(model=str(tmp_path)), ["--model", str(tmp_path)]),
        (dict(cache_max_size="lots"), ["--cache-max-size", "lots"]),
    ]
    for kwargs, flags in cases:
        with pytest.raises(scorer.UsageError) as raised:
            scorer.score(albums, allow_private_hosts=True, **kwargs)
        cli = CliRunner().invoke(app, ["catalog", str(tmp_path / "albums.csv"), "--out", str(tmp_path / "o.parquet"),
                                       *flags])
        assert cli.exit_code == 2
        assert cli.output.strip() == f"error: {raised.value.cli_message}"  # the command line names the flag
        assert str(raised.value) == python_names(raised.value.cli_message)  # the library the parameter
        assert "--" not in str(raised.value).split(". To score")[0]
    for kwargs, message in [
        (dict(concurrency=0), "concurrency 0: give a whole number from 1 to 1024"),
        (dict(timeout=-1), "timeout -1: give a number of at least 0.1"),
        (dict(keep=["rock", 3]), "keep ['rock', 3]: give genre names"),
        (dict(keep="rock", min_prob="0.5"), "min_prob '0.5': give a number between 0 and 1"),
        (dict(keep="rock", min_prob=2), "min_prob must be between 0 and 1, got 2"),
        (dict(batch_size=2.5), "batch_size 2.5: give a whole number from 1 to 1024"),
    ]:
        with pytest.raises(scorer.UsageError, match=re.escape(message)):
            scorer.score(albums, **kwargs)
    for covers, message in [
        (pd.DataFrame({"url": ["x"]}), "the DataFrame has no 'cover_url' column (found: url)"),
        (b"\xff\xd8", "got one image (bytes); pass a list of them"),
        ("cover.jpg", "'cover.jpg' is not a catalog file"),
        ("https://example.com/a.csv", "is not a catalog file"),
        (tmp_path / "none.csv", "none.csv: no such file"),
        (3.5, "got a float"),
        ({"cover_url": "x"}, "got a dict"),
    ]:
        with pytest.raises(scorer.UsageError, match=re.escape(message)):
            scorer.iter_scores(covers)  # at the call, before the first chunk is asked for
    with pytest.raises(TypeError, match="concurency"):
        scorer.score_catalog(tmp_path / "albums.csv", tmp_path / "o.parquet", concurency=3)  # type: ignore[call-arg]
    with pytest.raises(FileNotFoundError) as missing:
        scorer.score_catalog(tmp_path / "none.csv", tmp_path / "o.parquet")
    assert isinstance(missing.value, scorer.ScorerError) and isinstance(missing.value, scorer.UsageError)
    assert isinstance(scorer.UsageError("x"), ValueError)
    assert sum(store.hits.values()) == hits


def test_the_cover_column_can_have_another_name(albums, model, tmp_path):
    """``url_col``: a DataFrame's or a catalog file's covers in a column not called cover_url; it keeps its name."""
    plain = scorer.score(albums, model=model, allow_private_hosts=True)
    renamed = albums.rename(columns={"cover_url": "image"})
    scored = scorer.score(renamed, url_col="image", model=model, allow_private_hosts=True)
    assert "cover_url" not in scored.columns and list(scored["image"]) == list(renamed["image"])
    assert list(scored["status"]) == list(plain["status"])
    assert scored["p_rock"].round(5).equals(plain["p_rock"].round(5))
    renamed.to_csv(tmp_path / "renamed.csv", index=False)
    from_file = scorer.score(tmp_path / "renamed.csv", url_col="image", model=model, allow_private_hosts=True)
    assert list(from_file["status"]) == list(plain["status"]) and "cover_url" not in from_file.columns
    with pytest.raises(scorer.UsageError, match="no 'cover_url' column"):
        scorer.score(renamed, model=model)  # the default column is cover_url, and the message says url_col
    with pytest.raises(scorer.UsageError, match="url_col"):
        scorer.score(renamed, model=model)
    with pytest.raises(scorer.UsageError, match="would be overwritten"):  # the output's genre column
        scorer.score(albums.rename(columns={"cover_url": "genre"}), url_col="genre", model=model)


def test_one_error_family_with_builtin_kinds():
    """Every error the library raises on purpose is a ScorerError; a bad argument is also a ValueError, a
    missing input also a FileNotFoundError; a misspelt keyword is a TypeError in every public function."""
    from scorer.datasets.musicbrainz import BuildInterrupted
    from scorer.errors import Fault, OutputUnavailable, RowError
    from scorer.services.deezer import DeezerAccessError
    from scorer.services.musicbrainz import MusicBrainzError
    from scorer.services.spotify import SpotifyAccessError

    for kind in (scorer.UsageError, scorer.InputNotFound, scorer.RunLocked, scorer.ServiceError, Fault,
                 OutputUnavailable, RowError, BuildInterrupted, SpotifyAccessError, DeezerAccessError,
                 MusicBrainzError):
        assert issubclass(kind, scorer.ScorerError), kind
    for kind in (SpotifyAccessError, DeezerAccessError, MusicBrainzError):
        assert issubclass(kind, scorer.ServiceError)
    assert issubclass(scorer.InputNotFound, FileNotFoundError) and issubclass(scorer.InputNotFound, ValueError)
    for call in (lambda: scorer.score([], concurency=3), lambda: scorer.iter_scores([], concurency=3),
                 lambda: scorer.score_catalog("a.csv", "o.parquet", concurency=3),
                 lambda: scorer.score_links("a.tsv", "o.parquet", engine="local"),
                 lambda: scorer.score_playlist("x", concurency=3), lambda: scorer.evaluate("d", concurency=3),
                 lambda: scorer.train("d", "m", concurency=3), lambda: scorer.report("d", "r", concurency=3)):
        with pytest.raises(TypeError, match="unexpected keyword"):
            call()


def test_messages_name_parameters_in_python_and_flags_on_the_command_line():
    assert python_names("--min-prob 2: give a number between 0 and 1") == "min_prob 2: give a number between 0 and 1"
    assert python_names("--cache-max-size lots: not a size") == "cache_max_size lots: not a size"
    # a command the message suggests keeps its flags; a value that merely contains dashes is left alone
    text = "unknown genre(s) in --keep: x (scorer train DIR --out MODEL, then --model MODEL); see a--b"
    assert python_names(text) == text.replace("in --keep", "in keep")
    e = scorer.UsageError("--workers 0: give a whole number from 1 to 256")
    assert str(e) == "workers 0: give a whole number from 1 to 256" and e.cli_message.startswith("--workers 0")


def test_a_missing_extra_is_named_before_any_work(tmp_path):
    code = ("import sys; sys.modules['sklearn'] = None  # as if not installed\n"
            "import scorer\n"
            "try:\n    scorer.evaluate(sys.argv[1])\n"
            "except ModuleNotFoundError as e:\n    print(e.name, '|', e)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("sklearn | No module named 'sklearn': this needs the 'train' extra, "
                                  "pip install 'scorer[train]'")


# ------------------------------------------------------------------------------------------ threads, loops


def test_from_several_threads_with_one_model(albums, model):
    want = scorer.score(albums, model=model, allow_private_hosts=True)
    results: dict[int, pd.DataFrame] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = scorer.score(albums, model=model, allow_private_hosts=True)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    join_all(threads, "three threads scoring with one model")
    assert errors == [] and len(results) == 3
    probs = [f"p_{g}" for g in model.genres]
    for got in results.values():
        assert list(got["status"]) == list(want["status"])
        np.testing.assert_allclose(got[probs].to_numpy(), want[probs].to_numpy(), atol=1e-6)


def test_inside_a_running_event_loop(albums, model):
    async def notebook_cell():
        asyncio.get_running_loop()  # as in Jupyter: a loop is running on this thread
        return scorer.score(albums, model=model, allow_private_hosts=True)

    scored = asyncio.run(notebook_cell())
    assert list(scored["status"]) == ["ok", "ok", "ok", "http_404", "missing_url", "ok", "not_found"]


# ------------------------------------------------------------------------------------------ other commands


def test_the_other_commands_are_functions(model, tmp_path, sample_covers, store, no_proxy, monkeypatch):
    info = model.info()
    assert info["genres"] == model.genres and info["default_head"] in info["heads"] == model.heads
    json.dumps(info)  # plain data
    assert scorer.load_model(precision="fp32").version.endswith("+fp32")
    catalog = tmp_path / "c.csv"
    pd.DataFrame({"cover_url": [str(p) for p in sample_covers[:3]], "id": [1, 2, 3]}).to_csv(catalog, index=False)
    run = scorer.score_catalog(catalog, tmp_path / "out.parquet", keep="rock", model=model)
    assert run.summary.rows == 3 and not run.dataset and run.report["rows"] == 3
    assert pq.read_table(tmp_path / "out.parquet").column("id").to_pylist() == ["1", "2", "3"]  # CSV text as read
    index = scorer.report(tmp_path / "out.parquet", tmp_path / "report")
    assert index == tmp_path / "report" / "index.html" and index.is_file()
    with pytest.raises(scorer.UsageError, match="no such file or folder"):
        scorer.report(tmp_path / "missing.parquet", tmp_path / "r2")
    # a scored DataFrame, straight from score(): covers in memory are drawn as they were given
    scored = scorer.score(pd.DataFrame({"title": ["on disk", "in memory", "nowhere"],
                                        "cover_url": [sample_covers[0], Image.open(sample_covers[1]), "gone.jpg"]}),
                          keep="rock", model=model)
    index = scorer.report(scored, tmp_path / "frame-report")
    html = index.read_text()
    tiles = html.split('<div class="tile')[1:]
    drawn = [(re.search(r'<div class="t">([^<]*)</div>', t).group(1), "<img " in t.split('<div class="t">')[0])
             for t in tiles]
    assert drawn == [("on disk", True), ("in memory", True), ("nowhere", False)]
    assert len(list((tmp_path / "frame-report").rglob("c-*"))) == 2
    with pytest.raises(scorer.UsageError, match="not returned by scorer.score"):
        scorer.report(pd.DataFrame({"cover_url": ["x"]}), tmp_path / "r3")
    # the cache, in a folder of this test's own: one cover fetched over HTTP, nothing else
    monkeypatch.setenv("SCORER_CACHE_DIR", str(tmp_path / "cache"))
    before = store.hits["night-drive.jpg"]
    assert list(scorer.score([f"{store.base}/night-drive.jpg"], model=model, allow_private_hosts=True).status) == ["ok"]
    assert store.hits["night-drive.jpg"] == before + 1
    info = scorer.cache_info()
    assert info["parts"]["covers"]["files"] == 2 and info["parts"]["features"]["files"] == 0  # a blob, a URL entry
    gone = scorer.clear_cache()
    assert (gone["files"], gone["bytes"]) == (2, info["parts"]["covers"]["bytes"])
    assert scorer.cache_info()["parts"]["covers"]["files"] == 0


# ------------------------------------------------------------------------------------------ README


def _python_section() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Python: score from a notebook"):]
    section = section[:section.index("\n## ", 5)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


RUNNER = """
import asyncio, json, sys

async def cell():  # Jupyter runs each cell with an event loop running on its thread
    asyncio.get_running_loop()
    namespace = {}
    exec(compile(sys.stdin.read(), "README.md", "exec"), namespace)
    return namespace

ns = asyncio.run(cell())
print("RESULT " + json.dumps({"status": list(ns["scored"]["status"]), "index": list(ns["scored"].index),
                              "memory": list(ns["in_memory"]["status"]), "kept": ns["kept"],
                              "kept_rows": int(ns["scored"]["kept"].sum())}))
"""


def test_readme_python_section_runs_as_written(tmp_path, sample_covers, store, no_proxy):
    blocks = _python_section()
    assert len(blocks) == 4
    code = "\n".join(blocks)
    assert "https://covers.example.com" in code
    # the outside world: the example's covers host is the loopback CDN, which is on a private address
    code = code.replace("https://covers.example.com", store.base)
    for call in ("scorer.score(albums, ", 'scorer.iter_scores("albums.csv", '):
        assert call in code
        code = code.replace(call, f"{call}allow_private_hosts=True, ")
    (tmp_path / "covers").mkdir()
    shutil.copy(sample_covers[0], tmp_path / "covers" / "night-drive.jpg")
    before = store.hits["golden-hour.jpg"]
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, "-c", RUNNER], input=code, capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.split("RESULT ", 1)[1])
    assert result["status"] == ["ok", "ok", "http_404", "missing_url"] and result["index"] == [0, 1, 2, 3]
    assert result["memory"] == ["ok", "ok", "ok"]
    assert result["kept"] == result["kept_rows"]  # the chunked run keeps what the whole one kept
    assert store.hits["golden-hour.jpg"] > before
    assert "unknown genre(s) in keep: indie" in out.stdout  # the last block prints the UsageError
    assert (tmp_path / "albums-report" / "index.html").is_file()


def test_readme_api_reference_is_current():
    import apidoc

    assert apidoc.current() == apidoc.reference().strip(), "run: python tests/apidoc.py --write"
