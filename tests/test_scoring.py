"""The scoring stage (scorer.scoring) without the command line: the output columns and their nulls, what is kept,
the run's counts, and one output row per input row whether a cover is new, shared, remembered or never fetched."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest

from scorer.cli.demo import draw_covers
from scorer.errors import RowError, UsageError
from scorer.fetch import CoverFetcher, FetchOptions
from scorer.filters import KeepFilter
from scorer.model import Model
from scorer.scoring import (
    OUTPUT_COLUMNS,
    Companion,
    Scorer,
    Summary,
    append_scores,
    check_passthrough,
    embedding_column,
    output_columns,
    peak_rss_mb,
)
from scorer.sources.rows import ROW_ERROR

GENRES = ["rock", "pop", "jazz"]
NAN = np.nan
WHEN = pa.array([datetime(2026, 1, 2, tzinfo=timezone.utc)] * 3, pa.timestamp("us", tz="UTC"))


@pytest.fixture(scope="module")
def model() -> Model:
    return Model()


def test_output_columns_put_the_genres_after_familiarity_then_companions_then_the_embedding(model):
    assert output_columns(GENRES) == ["status", "error", "genre", "genre_prob", "familiarity", "p_rock", "p_pop",
                                      "p_jazz", "kept", "head", "model_version", "scored_at"]
    mood = Companion("mood", model, "colour-logreg", KeepFilter())
    cols = output_columns(["a"], [mood], embeddings=True)
    assert cols[:9] == ["status", "error", "genre", "genre_prob", "familiarity", "p_a", "kept", "head",
                        "model_version"]
    assert cols[9:] == ["scored_at", "mood_label", "mood_prob", *(f"mood_p_{g}" for g in model.genres), "embedding"]
    assert len(OUTPUT_COLUMNS) == 9


def test_an_input_column_named_like_an_output_column_is_refused():
    check_passthrough(["id", "cover_url", "genre_hint"], output_columns(GENRES))
    with pytest.raises(UsageError) as e:
        check_passthrough(["status", "id", "p_pop", "genre"], output_columns(GENRES))
    assert e.value.cli_message == ("input column(s) genre, p_pop, status would be overwritten by the scorer's "
                                   "output; rename them (is this already a scored file?)")


def _appended(**kw) -> dict:
    rows = pa.table({"id": ["a", "b", "c"]})
    proba = np.array([[0.2, 0.7, 0.1], [NAN, NAN, NAN], [0.5, 0.2, 0.3]], dtype=np.float32)
    out = append_scores(rows, ["ok", "fetch_failed", "ok"], [None, "HTTP 404", None], proba,
                        kw.pop("keep", KeepFilter(("pop",))), GENRES, "blend", "v1", scored_at=WHEN, **kw)
    return out.to_pydict() | {"_schema": out.schema}


def test_append_scores_writes_each_rows_genre_probabilities_and_nulls_for_failures():
    out = _appended(familiarity=np.array([0.9, NAN, NAN], dtype=np.float32))
    assert list(out)[:-1] == ["id", *output_columns(GENRES)]
    assert out["status"] == ["ok", "fetch_failed", "ok"] and out["error"] == [None, "HTTP 404", None]
    assert out["genre"] == ["pop", None, "rock"]
    assert out["genre_prob"] == [np.float32(0.7), None, np.float32(0.5)]
    # familiarity is null for a failure and where the model gave none (NaN)
    assert out["familiarity"] == [np.float32(0.9), None, None]
    assert out["p_rock"] == [np.float32(0.2), None, np.float32(0.5)]
    assert out["p_jazz"] == [np.float32(0.1), None, np.float32(0.3)]
    assert out["kept"] == [True, False, False]
    assert out["head"] == ["blend"] * 3 and out["model_version"] == ["v1"] * 3
    assert out["scored_at"] == WHEN.to_pylist()
    schema = out["_schema"]
    assert schema.field("genre_prob").type == pa.float32() and schema.field("familiarity").type == pa.float32()
    assert schema.field("kept").type == pa.bool_()


def test_append_scores_without_familiarity_or_a_time_gives_nulls_and_now():
    rows = pa.table({"id": [1]})
    before = datetime.now(timezone.utc)
    out = append_scores(rows, ["ok"], [None], np.array([[0.1, 0.1, 0.8]], np.float32), KeepFilter(), GENRES, "h",
                        "v")
    assert out.column("familiarity").to_pylist() == [None]
    assert out.schema.field("scored_at").type == pa.timestamp("us", tz="UTC")
    assert before <= out.column("scored_at")[0].as_py() <= datetime.now(timezone.utc)
    assert out.column("kept").to_pylist() == [True]


def test_a_row_is_kept_only_when_every_companion_keeps_it_too(model):
    g = model.genres
    p = np.zeros((3, len(g)), dtype=np.float32)
    first = g[0]  # a top label at index 0 is a label too
    p[0, g.index("jazz")], p[2, 0], p[2, g.index("jazz")] = 1.0, 0.9, 0.1
    p[1] = NAN
    keeps = Companion("mood", model, "colour-logreg", KeepFilter(("jazz",)))
    out = _appended(also=[(keeps, p)])
    # the main filter keeps row a (pop on top); the companion keeps the rows whose top is jazz: a only
    assert out["kept"] == [True, False, False]
    assert out["mood_label"] == ["jazz", None, first]
    assert out["mood_prob"] == [np.float32(1.0), None, np.float32(0.9)]
    assert out["mood_p_jazz"] == [np.float32(1.0), None, np.float32(0.1)]
    assert out[f"mood_p_{first}"] == [np.float32(0.0), None, np.float32(0.9)]
    # a companion without a share of --keep keeps everything the main filter keeps
    everything = Companion("mood", model, "colour-logreg", KeepFilter())
    assert _appended(also=[(everything, p)])["kept"] == [True, False, False]
    assert _appended(keep=KeepFilter(), also=[(everything, p)])["kept"] == [True, False, True]


def test_the_embedding_is_a_half_float_list_per_row_null_for_failures():
    features = np.arange(6, dtype=np.float32).reshape(3, 2)
    out = _appended(embedding=(features, 2))
    assert out["_schema"].field("embedding").type == pa.list_(pa.float16(), 2)
    assert out["embedding"] == [[0.0, 1.0], None, [4.0, 5.0]]
    # no features at all (every row failed before the network): zeros behind the nulls, right size
    column = embedding_column(None, 3, np.array([False, False]))
    assert column.type == pa.list_(pa.float16(), 3) and column.to_pylist() == [None, None]
    given = pa.array([[1.0], None, [2.0]], pa.list_(pa.float16(), 1))
    assert _appended(embedding=given)["embedding"] == [[1.0], None, [2.0]]


def test_summary_counts_rows_by_status_and_kept_rows_by_genre():
    summary = Summary()
    summary.add(pa.table({"status": ["ok", "ok", "fetch_failed", "ok", "bad_row"],
                          "genre": ["rock", "pop", None, "rock", None], "kept": [True, False, False, True, False]}))
    summary.seconds = 2.0
    got = summary.as_dict()
    peak = got.pop("peak_rss_mb")
    assert got == {"rows": 5, "scored": 3, "inferred": 0, "failed": {"fetch_failed": 1, "bad_row": 1},
                   "failure_rate": 0.4, "kept": {"rock": 2}, "kept_total": 2, "seconds": 2.0, "rows_per_second": 2.5}
    assert isinstance(peak, float) and peak > 0
    assert Summary().rows_per_second == 0.0 and Summary().failure_rate == 0.0


def test_peak_rss_is_this_process_high_water_mark():
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    assert peak_rss_mb() == pytest.approx(hwm / 1024, abs=0.1)


# ------------------------------------------------------------------------------------------ the Scorer
@pytest.fixture(scope="module")
def covers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("covers")
    return folder, [p.name for p in draw_covers(folder, 3, seed=7, size=96)]


@pytest.fixture
def fetcher(covers):
    with CoverFetcher(FetchOptions(cache=False), base_dir=covers[0]) as f:
        yield f


def test_one_output_row_per_input_row_and_one_inference_per_distinct_cover(model, covers, fetcher):
    _, names = covers
    scorer = Scorer(model, "colour-logreg", KeepFilter(), fetcher, batch_size=2, workers=1)
    urls = [names[0], names[1], names[0], "", "missing.jpg", names[2], names[1]]
    table = pa.table({"id": list(range(7)), "cover_url": urls,
                      ROW_ERROR: [None, None, None, None, None, "line 7: 3 fields, the header has 2", None]})
    progress: list[int] = []
    out = scorer.score(table, on_progress=progress.append)
    status = out.column("status").to_pylist()
    assert out.column("id").to_pylist() == list(range(7)) and ROW_ERROR not in out.column_names
    assert status == ["ok", "ok", "ok", "missing_url", "not_found", "bad_row", "ok"]
    assert out.column("error")[5].as_py() == "line 7: 3 fields, the header has 2"
    p = np.array([out.column(f"p_{g}").to_pylist() for g in model.genres], dtype=np.float32).T
    np.testing.assert_array_equal(p[0], p[2])  # rows sharing a cover share its verdict
    np.testing.assert_array_equal(p[1], p[6])
    np.testing.assert_allclose(p[[0, 1, 2, 6]].sum(axis=1), 1.0, atol=1e-5)
    assert scorer.summary.inferred == 2 and scorer.summary.rows == 7 and scorer.summary.scored == 4
    assert sum(progress) == 7  # every row once: fetched covers, then the rows that were not fetched
    # a second table: the remembered covers are not fetched (or counted as inferred) again
    again = scorer.score(pa.table({"id": [7, 8], "cover_url": [names[1], names[2]]}))
    assert again.column("status").to_pylist() == ["ok", "ok"] and scorer.summary.inferred == 3
    np.testing.assert_array_equal([again.column(f"p_{g}")[0].as_py() for g in model.genres], p[1])


def test_preset_errors_are_not_fetched_and_the_memo_forgets_the_oldest(model, covers, fetcher):
    _, names = covers
    scorer = Scorer(model, "colour-logreg", KeepFilter(), fetcher, batch_size=4, workers=1, memo_size=1)
    out = scorer.score(pa.table({"cover_url": [names[0], names[1]]}),
                       preset=[RowError("local_file_refused", "no local files"), None])
    assert out.column("status").to_pylist() == ["local_file_refused", "ok"]
    assert out.column("error").to_pylist() == ["no local files", None]
    assert scorer.summary.inferred == 1 and list(scorer._memo) == [names[1]]
    scorer.score(pa.table({"cover_url": [names[0]]}))
    assert list(scorer._memo) == [names[0]] and scorer.summary.inferred == 2


def test_run_yields_tables_of_chunk_rows_and_one_for_an_empty_table(model, covers, fetcher):
    _, names = covers
    scorer = Scorer(model, "colour-logreg", KeepFilter(), fetcher, batch_size=2, workers=1, chunk_rows=2)
    progress: list[int] = []
    sizes = [t.num_rows for t in scorer.run(pa.table({"cover_url": names + names[:2]}), progress.append)]
    assert sizes == [2, 2, 1] and sum(progress) == 5
    scorer.chunk_rows = 1  # one table for an empty input, whatever the chunk size
    empty = list(scorer.run(pa.table({"cover_url": pa.array([], pa.string())})))
    assert [t.num_rows for t in empty] == [0] and empty[0].column_names[1:] == output_columns(model.genres)
