"""The Ray Data driver on a local Ray (2 CPUs): the same rows and scores as the local engine."""

from __future__ import annotations

import json

import needs
import numpy as np
import pandas as pd
import pytest
from fakes.cdn import CoverCDN
from typer.testing import CliRunner

from scorer.cli import app
from scorer.model import Model

ray = needs.module("ray", "the ray extra is not installed (pip install 'scorer[ray]')")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_and_local_engines_agree(local_ray, sample_covers, tmp_path):
    with CoverCDN(sample_covers) as cdn:
        rows = [f"{i:04d},Album {i},{cdn.base}/img/r{i % 25}.jpg" for i in range(90)]
        rows += [f"9001,Gone,{cdn.base}/bad/gone", "9002,Nothing,", f"9003,Page,{cdn.base}/bad/html",
                 '9004,"Half"quoted,x']
        src = tmp_path / "catalog.csv"
        src.write_text("id,title,cover_url\n" + "\n".join(rows) + "\n")
        outputs = {}
        for engine in ("local", "ray"):
            out = tmp_path / engine
            result = CliRunner().invoke(app, ["catalog", str(src), "--out", str(out), "--engine", engine,
                                              "--keep", "rock,pop", "--shard-rows", "40", "--allow-private-hosts",
                                              "--no-cache", "--json"])
            assert result.exit_code == 0, result.output
            summary = json.loads(result.stdout.strip().splitlines()[-1])
            assert summary["rows"] == 94 and summary["scored"] == 90
            assert summary["seconds"] > 0 and summary["rows_per_second"] > 0  # was 0.0 on Ray
            outputs[engine] = pd.read_parquet(out).sort_values("id").reset_index(drop=True)
    local, distributed = outputs["local"], outputs["ray"]
    assert json.loads((tmp_path / "ray" / "_scorer" / "summary.json").read_text())["engine"] == "ray"
    assert len(distributed) == len(local) == 94
    assert distributed.error[distributed.status == "bad_row"].tolist() == [
        "line 95: bad quoting (',' expected after '\"')"]
    assert list(distributed.columns) == list(local.columns)
    for col in ("id", "title", "cover_url", "status", "genre", "kept", "head", "model_version"):
        assert distributed[col].tolist() == local[col].tolist(), col
    assert dict(zip(local.id, local.status))["9001"] == "http_404"
    genres = Model().genres
    p = [f"p_{g}" for g in genres]
    ok = local.status == "ok"
    np.testing.assert_allclose(distributed.loc[ok, p].to_numpy(float), local.loc[ok, p].to_numpy(float), atol=1e-5)
    assert distributed.loc[~ok, p].isna().all().all()
