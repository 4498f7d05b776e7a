"""``scorer demo`` runs the real pipeline end to end on covers it draws itself."""

from __future__ import annotations

import pyarrow.parquet as pq
from typer.testing import CliRunner

from scorer.cli import app
from scorer.cli.demo import PALETTES


def test_demo_scores_every_row(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    df = pq.read_table(tmp_path / "demo" / "scored.parquet").to_pandas()
    assert len(df) == 3 * len(PALETTES) + 1
    assert (df.status == "ok").sum() == 3 * len(PALETTES)
    assert df.loc[df.id == "demo-missing", "status"].item() == "not_found"
    assert "rows in" in result.output and "kept" in result.output
    assert "not album art" in result.output and "scorer info" in result.output  # no one reads it as a test
    kept = df[df.kept]
    assert set(kept.genre) <= {"rock", "pop"}
    assert ((df.status == "ok") & df.genre.isin(["rock", "pop"])).sum() == len(kept)
