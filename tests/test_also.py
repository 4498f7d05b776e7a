"""Two models in one pass (``also=`` / ``--also``) and the ``embedding`` column (``embeddings=`` / ``--embeddings``),
on real covers with the shipped model and copies of it that differ as a user's own model would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import scorer
from scorer.decode import decode_image
from scorer.model import Model, default_model_dir
from scorer.sinks import read_metadata


def _copy_model(tmp: Path, name: str, head: str | None = None, network_id: str | None = None) -> Path:
    """The shipped model under another name (and default head, or network id): a second model to score beside it."""
    out = tmp / name
    shutil.copytree(default_model_dir(), out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["name"] = name
    if head is not None:
        manifest["default_head"] = head
    if network_id is not None:
        cnn = manifest["featurizers"]["cnn"]
        for variant in cnn["variants"].values():
            variant["id"] = network_id
        cnn["id"] = network_id
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module")
def taste(tmp_path_factory) -> Path:
    """Same network as the shipped model, another head: like a model trained on its network."""
    return _copy_model(tmp_path_factory.mktemp("models"), "taste", head="cnn-logreg")


class _Counting:
    """The real featurizer, counting the covers it runs on."""

    def __init__(self, inner):
        self.inner, self.covers = inner, 0

    def __getattr__(self, name):  # dim, preferred_batch, ...: the real featurizer's
        return getattr(self.inner, name)

    def __call__(self, images):
        self.covers += len(images)
        return self.inner(images)


def test_a_companion_model_adds_its_columns_and_shares_the_network_run(sample_covers, taste):
    covers = [str(p) for p in sample_covers[:12]]
    main, other = Model(), Model(taste)
    main.cnn = _Counting(main.cnn)  # type: ignore[misc]
    other.cnn = _Counting(other.cnn)  # type: ignore[misc]
    both = scorer.score(covers, model=main, also=other)
    alone = scorer.score(covers, model=Model(taste))
    assert main.cnn.covers == len(covers) and other.cnn.covers == 0  # one network run per cover
    assert [c for c in both.columns if c.startswith("taste_")] == [
        "taste_label", "taste_prob", *(f"taste_p_{g}" for g in other.genres)]
    assert both["taste_label"].tolist() == alone["genre"].tolist()
    np.testing.assert_allclose(both["taste_prob"], alone["genre_prob"], rtol=1e-5)
    np.testing.assert_allclose(both[[f"taste_p_{g}" for g in other.genres]].to_numpy(),
                               alone[[f"p_{g}" for g in other.genres]].to_numpy(), rtol=1e-5)
    assert (both["taste_label"] != both["genre"]).any()  # another head: not a copy of the main columns
    assert both.attrs["scorer"]["also"][0]["shares_network"] is True


def test_a_companion_with_another_network_runs_its_own(sample_covers, tmp_path):
    covers = [str(p) for p in sample_covers[:6]]
    main, other = Model(), Model(_copy_model(tmp_path, "elsewhere", network_id="another-network"))
    main.cnn = _Counting(main.cnn)  # type: ignore[misc]
    other.cnn = _Counting(other.cnn)  # type: ignore[misc]
    both = scorer.score(covers, model=main, also={"own": other})
    assert main.cnn.covers == len(covers) and other.cnn.covers == len(covers)
    assert both["own_label"].tolist() == both["genre"].tolist()  # the same weights under another id
    assert both.attrs["scorer"]["also"][0]["shares_network"] is False


def test_keep_takes_labels_of_either_model_and_keeps_what_both_keep(sample_covers, taste):
    covers = [str(p) for p in sample_covers] + ["/nonexistent/cover.jpg"]
    scored = scorer.score(covers, also=taste, keep="rock,country,taste:pop,taste:rock")
    ok = scored["status"] == "ok"
    expected = ok & scored["genre"].isin(["rock", "country"]) & scored["taste_label"].isin(["pop", "rock"])
    assert scored["kept"].tolist() == expected.tolist()
    assert 0 < expected.sum() < ok.sum()
    failed = scored[~ok].iloc[0]
    assert pd.isna(failed["taste_label"]) and pd.isna(failed["taste_prob"]) and not failed["kept"]
    only_taste = scorer.score(covers, also=taste, keep="taste:pop", min_prob=0.3)
    summed = only_taste["taste_p_pop"].fillna(0) >= 0.3
    assert only_taste["kept"].tolist() == (summed & ok).tolist()


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(keep="rock,likes"), "unknown label(s) in keep: likes. The models know the main model: classical"),
    (dict(also=["same=models/default", "same=models/default"]), "two models are called 'same'"),
    (dict(also={"genre": "models/default"}), "the models' columns clash (genre_prob)"),
    (dict(also={"Bad Name": "models/default"}), "'Bad Name' cannot prefix column names"),
    (dict(also=["/nonexistent/model"]), "is not a model directory"),
    (dict(also="models/default", min_prob=0.5), "min_prob needs keep"),
    (dict(embeddings="yes"), "embeddings 'yes'"),
])
def test_bad_companions_fail_before_any_cover_is_read(kwargs, message):
    with pytest.raises(scorer.UsageError) as e:
        scorer.score(["/nonexistent/cover.jpg"], **{"also": "models/default", **kwargs})
    assert message in str(e.value)


def test_embeddings_are_the_networks_features_in_float16(sample_covers):
    covers = [str(p) for p in sample_covers[:5]] + ["/nonexistent/cover.jpg"]
    scored = scorer.score(covers, embeddings=True)
    model = Model()
    expected = model.cnn(np.stack([decode_image(Path(c).read_bytes()) for c in covers[:5]])).astype(np.float16)
    got = np.stack(scored["embedding"].iloc[:5].to_list())
    assert got.dtype == np.float16 and got.shape == (5, model.cnn.dim)
    np.testing.assert_allclose(got.astype(np.float32), expected.astype(np.float32), rtol=1e-2, atol=1e-2)
    assert scored["embedding"].iloc[5] is None
    meta = scored.attrs["scorer"]["embedding"]
    assert meta["featurizer_id"] == model.network_key[0] and meta["dim"] == model.cnn.dim


def test_catalog_cli_writes_both_models_and_embeddings_to_parquet(sample_covers, taste, tmp_path):
    catalog = tmp_path / "catalog.csv"
    pd.DataFrame({"cover_url": [str(p) for p in sample_covers[:8]] + ["missing.jpg"]}).to_csv(catalog, index=False)
    out = tmp_path / "scored.parquet"
    run = subprocess.run([sys.executable, "-m", "scorer.cli", "catalog", str(catalog), "--out", str(out),
                          "--also", f"mine={taste}", "--embeddings", "--keep", "mine:rock,mine:pop", "--json"],
                         check=False, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    table = pq.read_table(out)
    assert table.schema.field("embedding").type == pa.list_(pa.float16(), 1280)
    assert table.column("embedding").null_count == 1
    frame = table.to_pandas()
    assert frame["kept"].tolist() == (frame["mine_label"].isin(["rock", "pop"])).tolist()
    meta = read_metadata(out)
    assert meta["also"][0]["name"] == "mine" and meta["also"][0]["keep"] == ["rock", "pop"]
    assert meta["embedding"]["dtype"] == "float16"


def test_an_incremental_dataset_carries_companion_columns_and_embeddings(sample_covers, taste, tmp_path):
    catalog = tmp_path / "catalog.csv"
    pd.DataFrame({"cover_url": [str(p) for p in sample_covers[:10]]}).to_csv(catalog, index=False)
    out = tmp_path / "dataset"
    first = scorer.score_catalog(catalog, out, also=taste, embeddings=True, shard_rows=4)
    shifted = [str(sample_covers[10])] + [str(p) for p in sample_covers[:10]]  # every part changes; rows carry
    pd.DataFrame({"cover_url": shifted}).to_csv(catalog, index=False)
    second = scorer.score_catalog(catalog, out, also=taste, embeddings=True, shard_rows=4)
    assert first.report["rows_rescored"] == 10
    assert second.report["rows_carried"] == 8 and second.report["rows_rescored"] == 3
    frame = pq.read_table(out).to_pandas()
    alone = scorer.score(shifted, model=taste, embeddings=True)
    assert frame["taste_label"].tolist() == alone["genre"].tolist()
    np.testing.assert_array_equal(np.stack(frame["embedding"].to_list()), np.stack(alone["embedding"].to_list()))
    third = scorer.score_catalog(catalog, out, shard_rows=4)  # without them: nothing stale carried
    assert third.report["rows_carried"] == 0
    assert "embedding" not in pq.read_table(out).column_names
