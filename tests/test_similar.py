"""``scorer similar`` and ``scorer.similar`` on real covers: an index of scored covers with their embeddings, and
queries by path, URL, id, and by a re-compressed, resized copy of an indexed cover."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

import scorer
from scorer.cli import app
from scorer.errors import UsageError
from scorer.model import Model
from scorer.sinks import read_metadata
from scorer.sinks.parquet import METADATA_KEY

pytestmark = pytest.mark.shared_data


def catalog(covers: list[Path], path: Path, missing: int = 0) -> Path:
    """A catalog of ``covers`` (absolute paths) with an ``id`` per row, and ``missing`` rows whose cover is not
    there (scored ``not_found``: no embedding)."""
    gone = [f"/no/such/cover-{i}.jpg" for i in range(missing)]
    pd.DataFrame({"id": [p.stem for p in covers] + [f"gone-{i}" for i in range(missing)],
                  "cover_url": [str(p.resolve()) for p in covers] + gone,
                  "folder": [p.parent.name for p in covers] + [""] * missing}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model() -> Model:
    return Model()


@pytest.fixture(scope="module")
def index(tmp_path_factory, sample_covers, model) -> Path:
    """The 40 sample covers (8 per genre) and two rows whose cover was not found, scored with embeddings."""
    folder = tmp_path_factory.mktemp("index")
    path = folder / "scored.parquet"
    scorer.score_catalog(catalog(sample_covers, folder / "covers.csv", missing=2), path, model=model,
                         embeddings=True)
    return path


def test_the_index_is_what_scoring_writes(index, sample_covers, model):
    schema = pq.read_schema(index)
    assert schema.field("embedding").type == pa.list_(pa.float16(), model.cnn.dim)
    assert read_metadata(index)["featurizer_id"] == model.variants[model.precision]["id"]
    table = pq.read_table(index, columns=["status", "embedding"]).to_pydict()
    assert table["status"] == ["ok"] * len(sample_covers) + ["not_found"] * 2
    assert [e is None for e in table["embedding"]] == [False] * len(sample_covers) + [True] * 2


def test_each_indexed_cover_is_its_own_nearest_row(index, sample_covers):
    found = scorer.similar([str(p) for p in sample_covers], index=index, top=2)
    assert len(found) == 2 * len(sample_covers) and (found["status"] == "ok").all()
    first = found[found["rank"] == 1]
    assert first["query"].tolist() == [str(p) for p in sample_covers]
    assert first["id"].tolist() == [p.stem for p in sample_covers]
    assert (first["similarity"] > 0.999).all()
    second = found[found["rank"] == 2]
    assert (second["similarity"].to_numpy() < first["similarity"].to_numpy()).all()
    assert (second["id"].to_numpy() != first["id"].to_numpy()).all()
    assert "embedding" not in found.columns and {"folder", "genre", "p_rock", "cover_url"} <= set(found.columns)


def test_a_recompressed_resized_copy_finds_its_cover_in_the_top_3(index, sample_covers, tmp_path):
    copies = []
    for p in sample_covers:
        with Image.open(p) as im:
            small = im.convert("RGB").resize((round(im.width * 0.6), round(im.height * 0.6)), Image.Resampling.BILINEAR)
        copy = tmp_path / f"{p.stem}.jpg"
        small.save(copy, format="JPEG", quality=60)
        copies.append(copy)
    found = scorer.similar(copies, index=index, top=3)
    assert len(found) == 3 * len(copies)
    for copy, rows in found.groupby("query", sort=False):
        assert Path(copy).stem in rows["id"].tolist(), (copy, rows[["rank", "similarity", "id"]])
    own = found[found["id"] == found["query"].map(lambda q: Path(q).stem)]
    assert (own["rank"] == 1).mean() >= 0.9  # nearly always first, not merely in the top 3
    others = found[found["id"] != found["query"].map(lambda q: Path(q).stem)]
    assert own["similarity"].median() > others["similarity"].max()  # the copies stand apart from other covers


def test_an_id_query_searches_with_the_row_stored_vector(index, sample_covers):
    cover = sample_covers[11]
    by_id = scorer.similar(cover.stem, index=index, top=5)
    by_path = scorer.similar(cover, index=index, top=5)
    assert by_id["query"].tolist() == [cover.stem] * 5
    assert by_id["id"].tolist() == by_path["id"].tolist() and by_id["id"].iloc[0] == cover.stem
    assert by_id["rank"].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(by_id["similarity"], by_path["similarity"], atol=1e-5)
    assert by_id["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-6)


def test_an_id_wins_over_a_file_of_that_name_written_the_same_way(index, sample_covers, tmp_path, monkeypatch):
    other = sample_covers[30]
    named = tmp_path / sample_covers[3].stem  # a file named as another row's id, holding another cover
    named.write_bytes(other.read_bytes())
    monkeypatch.chdir(tmp_path)
    as_id = scorer.similar(named.name, index=index, top=1)
    as_file = scorer.similar(f"./{named.name}", index=index, top=1)
    assert as_id["id"].tolist() == [sample_covers[3].stem]
    assert as_file["id"].tolist() == [other.stem]


def test_queries_that_cannot_be_read_are_one_row_each_with_their_status(index, sample_covers, tmp_path, cdn,
                                                                          no_proxy):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a cover")
    queries = [str(tmp_path / "absent.jpg"), str(not_image), f"{cdn.base}/bad/gone", f"{cdn.base}/img/a.jpg",
               "gone-0", 12345]
    found = scorer.similar(queries, index=index, top=2, allow_private_hosts=True)
    by_query = {q: rows for q, rows in found.groupby("query", sort=False)}
    assert list(by_query) == [str(q) for q in queries]
    expected = {queries[0]: "not_found", queries[1]: "not_an_image", queries[2]: "http_404",
                "gone-0": "not_found", "12345": "not_found"}
    for query, status in expected.items():
        rows = by_query[query]
        assert len(rows) == 1 and rows["status"].iloc[0] == status, rows
        assert rows["error"].iloc[0] and pd.isna(rows["rank"].iloc[0]) and rows["id"].isna().all()
    assert "was not scored: " in by_query["gone-0"]["error"].iloc[0]
    assert "no row of the index has id 12345" in by_query["12345"]["error"].iloc[0]
    served = by_query[queries[3]]  # the fake CDN's cover at that URL is one of the indexed covers
    assert served["status"].tolist() == ["ok", "ok"]
    assert served["id"].iloc[0] == cdn.covers[cdn.cover_index("a.jpg")].stem
    summary = found.attrs["scorer"]["summary"]
    assert summary["queries"] == 6 and summary["found"] == 1
    assert summary["failed"] == {"not_found": 3, "not_an_image": 1, "http_404": 1}


def test_top_beyond_the_index_gives_every_row_with_an_embedding_once(index, sample_covers):
    found = scorer.similar([sample_covers[0], sample_covers[20]], index=index, top=1000)
    assert len(found) == 2 * len(sample_covers)
    for _, rows in found.groupby("query", sort=False):
        assert rows["rank"].tolist() == list(range(1, len(sample_covers) + 1))
        assert sorted(rows["id"]) == sorted(p.stem for p in sample_covers)  # not the rows without a cover
        assert (np.diff(rows["similarity"].to_numpy()) <= 0).all()


def test_a_dataframe_and_a_dataset_folder_are_indexes_too(index, sample_covers, tmp_path):
    queries = [sample_covers[5], sample_covers[25]]
    expected = scorer.similar(queries, index=index, top=4)
    frame = pd.read_parquet(index)
    assert isinstance(frame["embedding"].dropna().iloc[0], np.ndarray)
    from_frame = scorer.similar(queries, index=frame, top=4)
    scored = scorer.score(frame[["id", "cover_url"]], embeddings=True)  # what the library returns, with its attrs
    from_scored = scorer.similar(queries, index=scored, top=4)
    table = pq.read_table(index)
    folder = tmp_path / "dataset"
    folder.mkdir()
    pq.write_table(table.slice(0, 17), folder / "part-00000.parquet")
    pq.write_table(table.slice(17), folder / "part-00001.parquet")
    from_folder = scorer.similar(queries, index=folder, top=4)
    for other in (from_frame, from_folder, from_scored):
        assert other["id"].tolist() == expected["id"].tolist()
        np.testing.assert_allclose(other["similarity"], expected["similarity"], atol=1e-6)


def test_bad_arguments_fail_before_any_cover_is_fetched(index, sample_covers, tmp_path, cdn, no_proxy, model):
    url = f"{cdn.base}/img/before-work.jpg"
    no_embedding = tmp_path / "plain.parquet"
    pq.write_table(pq.read_table(index).drop_columns(["embedding"]), no_embedding)
    other_network = tmp_path / "other.parquet"
    table = pq.read_table(index)
    meta = {**read_metadata(index), "featurizer_id": "efficientnet-lite2-imagenet-0123abcd", "model_version": "x1"}
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()}), other_network)
    cases = [
        (dict(index=index, top=0), "top 0"),
        (dict(index=index, top=2.5), "top 2.5"),
        (dict(index=no_embedding), "has no 'embedding' column"),
        (dict(index=other_network), "made by network efficientnet-lite2-imagenet-0123abcd"),
        (dict(index=tmp_path / "absent.parquet"), "no such file"),
        (dict(index=str(tmp_path / "catalog.csv")), "give a scored .parquet file"),
        (dict(index=index, out=tmp_path / "out.csv"), "out"),
        (dict(index=pd.read_parquet(index).rename(columns={"folder": "rank"})), "has a column named 'rank'"),
    ]
    for kwargs, words in cases:
        with pytest.raises(UsageError, match=words):
            scorer.similar([url], allow_private_hosts=True, **kwargs)
    with pytest.raises(UsageError, match="queries: none"):
        scorer.similar([], index=index)
    assert cdn.hits["/img/before-work.jpg"] == 0


def test_the_command_prints_a_table_and_writes_out_atomically(index, sample_covers, tmp_path):
    out = tmp_path / "found.parquet"
    out.write_bytes(b"the previous output")
    queries = [str(sample_covers[2]), str(tmp_path / "absent.jpg"), sample_covers[9].stem]
    result = CliRunner().invoke(app, ["similar", *queries, "--index", str(index), "--top", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "rank" in text and "similarity" in text and f"wrote {out}" in text
    assert sample_covers[2].stem in text and "not_found" in text
    # in query order: the first query's table, the second's error, the third's table
    assert text.index("rank") < text.index(f"{queries[1]}: not_found") < text.rindex("rank")
    assert "3 queries · 2 found · not_found 1" in text
    written = pq.read_table(out).to_pandas()
    assert len(written) == 7 and written["query"].tolist()[:3] == [queries[0]] * 3
    assert written["id"].iloc[0] == sample_covers[2].stem and written["id"].iloc[4] == sample_covers[9].stem
    assert written["status"].tolist() == ["ok"] * 3 + ["not_found"] + ["ok"] * 3
    assert read_metadata(out)["similar"]["top"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["found.parquet"]  # no temporary file left beside it

    as_json = CliRunner().invoke(app, ["similar", sample_covers[4].stem, "--index", str(index), "--top", "2",
                                       "--json"])
    rows = [json.loads(line) for line in as_json.output.splitlines()]
    assert [(r["rank"], r["query"]) for r in rows] == [(1, sample_covers[4].stem), (2, sample_covers[4].stem)]
    assert rows[0]["id"] == sample_covers[4].stem and rows[0]["similarity"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(("args", "words"), [
    (["--top", "0"], "error: --top 0: give a whole number of at least 1"),
    (["--out", "found.csv"], "error: --out found.csv: give a .parquet file name"),
])
def test_the_command_says_a_bad_argument_in_one_line(index, sample_covers, args, words):
    result = CliRunner().invoke(app, ["similar", str(sample_covers[0]), "--index", str(index), *args])
    assert result.exit_code == 2
    assert result.output.strip() == words


def test_an_index_without_embeddings_is_one_line_too(index, sample_covers, tmp_path):
    plain = tmp_path / "plain.parquet"
    pq.write_table(pq.read_table(index).drop_columns(["embedding"]), plain)
    result = CliRunner().invoke(app, ["similar", str(sample_covers[0]), "--index", str(plain)])
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: --index {plain} has no 'embedding' column: score it with "
                                     f"--embeddings (embeddings=True in the library)")


def test_image_bytes_round_trip_stays_near(index, sample_covers):
    """The index's float16 storage and the query path agree: a cover given as PNG finds itself at ~1."""
    buf = io.BytesIO()
    with Image.open(sample_covers[7]) as im:
        im.convert("RGB").save(buf, format="PNG")
    png = Path(index).parent / "lossless.png"
    png.write_bytes(buf.getvalue())
    found = scorer.similar(png, index=index, top=1)
    assert found["id"].tolist() == [sample_covers[7].stem] and found["similarity"].iloc[0] > 0.999


def test_queries_are_featurized_at_the_precision_the_index_was_scored_at(sample_covers, tmp_path, model):
    """An index scored with the int8 network is searched with int8 features of the queries, not the default fp32."""
    assert "int8" in model.variants and model.precision != "int8"
    covers = sample_covers[::5]
    path = tmp_path / "int8.parquet"
    scorer.score_catalog(catalog(covers, tmp_path / "covers.csv"), path, precision="int8", embeddings=True)
    assert read_metadata(path)["featurizer_id"] == model.variants["int8"]["id"]
    found = scorer.similar(covers, index=path, top=1)
    assert found["id"].tolist() == [p.stem for p in covers]
    assert (found["similarity"] > 0.999).all()  # the same network: the same features, up to float16
    assert found.attrs["scorer"]["featurizer_id"] == model.variants["int8"]["id"]


def test_an_index_read_once_is_kept_until_its_file_is_replaced(index, sample_covers, tmp_path, model):
    from scorer.runners.similar_index import open_index

    path = tmp_path / "kept.parquet"
    shutil.copy(index, path)
    first = open_index(path).read_kept()
    assert open_index(path).read_kept() is first  # a notebook asking again reads nothing
    before = scorer.similar(sample_covers[0], index=path, top=1)
    scorer.score_catalog(catalog(sample_covers[20:], tmp_path / "others.csv"), path, model=model, embeddings=True)
    assert open_index(path).read_kept() is not first
    after = scorer.similar(sample_covers[0], index=path, top=1)
    assert before["id"].tolist() == [sample_covers[0].stem]
    assert after["id"].iloc[0] in {p.stem for p in sample_covers[20:]}
