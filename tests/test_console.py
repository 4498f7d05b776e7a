"""The tables the command line prints say what its ``--json`` says: each figure of a real run is read back from
the text (parsed, not snapshotted) and compared with the same run's JSON."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scorer.cli import app

WIDE = "250"  # wide enough that no cell is cut: the figures are read back from the text


def _labelled(shared: Path, out: Path, genres: tuple[str, ...], n: int, artist: bool = False) -> Path:
    """A labels CSV of the first ``n`` covers of each genre of a shared set (its own labels.csv's order)."""
    rows = list(csv.DictReader(open(shared / "labels.csv", newline="")))
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "genre", *(["artist"] if artist else [])])
        for g in genres:
            for r in [r for r in rows if r["genre"] == g][:n]:
                w.writerow([shared / r["path"], g, *([r["artist"]] if artist else [])])
    return out


def _tables(text: str) -> dict[str, list[list[str]]]:
    """Every boxed table of rich's output: its title (the line above it) -> its rows of cells, the header
    first (a header cut over two lines is joined back)."""
    lines = text.splitlines()
    out: dict[str, list[list[str]]] = {}
    i = 0
    while i < len(lines):
        if lines[i].startswith("┏"):
            title = lines[i - 1].strip()
            header: list[str] = []
            rows = []
            i += 1
            while not lines[i].startswith("└"):
                line = lines[i]
                cells = [c.strip() for c in re.split("[┃│]", line)[1:-1]]
                if line.startswith("┃"):
                    header = cells if not header else [f"{a} {b}".strip() for a, b in zip(header, cells)]
                elif line.startswith("│"):
                    rows.append(cells)
                i += 1
            assert title not in out, title
            out[title] = [header, *rows]
        i += 1
    return out


@pytest.fixture(scope="module")
def evaluation(covers_dir, spotify_dir, tmp_path_factory):
    """One real ``scorer evaluate`` of two inputs sharing two genres (so held-out splits are formed), with
    --unknown-genres, the two cheapest heads: its JSON and its text."""
    tmp = tmp_path_factory.mktemp("evaluation")
    discogs = _labelled(covers_dir, tmp / "discogs.csv", ("country", "hiphop", "rock"), 20)
    spotify = _labelled(spotify_dir, tmp / "spotify.csv", ("country", "hiphop", "jazz"), 20, artist=True)
    args = ["evaluate", str(discogs), str(spotify), "--folds", "2", "--heads", "cnn-logreg,cnn-knn",
            "--unknown-genres"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLUMNS", WIDE)
        as_json = CliRunner().invoke(app, [*args, "--json"])
        as_text = CliRunner().invoke(app, args)
    assert as_json.exit_code == 0, as_json.output
    assert as_text.exit_code == 0, as_text.output
    return json.loads(as_json.stdout.strip().splitlines()[-1]), as_text.stdout


def _kept(got: dict) -> str:
    return "none kept" if got["precision"] is None else f"{got['precision']:.2f} ({got['kept']})"


def test_evaluation_text_heading_and_in_collection_figures(evaluation):
    result, text = evaluation
    assert result["heldout"] and result["unknown_genres"] and result["calibration"]  # every table is printed
    lines = text.splitlines()
    heading = re.fullmatch(r"(\d+)-fold stratified group CV \(seed (\d+)\) on (\d+) covers, (\d+) genres, \d+s",
                           lines[0])
    assert heading, lines[0]
    assert [int(x) for x in heading.groups()] == [result["folds"], result["seed"], result["images"],
                                                  len(result["genres"])] == [2, 0, 120, 4]
    network = result["network"]
    assert f"heads on: {network['description']} ({network['id']})" in lines
    grouping = result["dataset"]["grouping"]
    nd = grouping["near_duplicates"]
    assert (f"groups: {grouping['groups']} ({nd['clusters']} near-duplicate clusters of "
            f"{nd['covers_in_clusters']} covers)") in lines

    tables = _tables(text)
    header, *rows = tables["in-collection (out-of-fold)"]
    assert header == ["head", "accuracy", "balanced acc.", "ECE", "ECE calibrated", "right at ≥0.5", "right at ≥0.7"]
    best = result["best_head"]
    by_name = {r[0].removesuffix(" *"): r for r in rows}
    assert [r[0] for r in rows if r[0].endswith(" *")] == [f"{best} *"]
    assert set(by_name) == set(result["heads"]) == {"cnn-logreg", "cnn-knn", "ensemble"}
    printed_order = [float(r[2]) for r in rows]
    assert printed_order == sorted(printed_order, reverse=True)  # best balanced accuracy first
    for name, m in result["heads"].items():
        cal = result["calibration"]["heads"][name]
        assert by_name[name][1:] == [f"{m['accuracy']:.3f}", f"{m['balanced_accuracy']:.3f}",
                                     f"{cal['ece_before']:.3f}", f"{cal['ece_after']:.3f}",
                                     _kept(m["precision_at"]["0.5"]), _kept(m["precision_at"]["0.7"])], name

    header, *rows = tables["recall per genre (the best heads)"]
    assert header[0] == "recall" and set(header[1:]) == set(result["heads"])
    assert [r[0] for r in rows] == result["genres"]
    for r in rows:
        for head, cell in zip(header[1:], r[1:]):
            assert cell == f"{result['heads'][head]['recall'][r[0]]:.2f}", (head, r[0])

    assert "confusion matrices (rows: true genre, columns: predicted)" in lines
    for name, m in result["heads"].items():
        header, *rows = tables[name]
        assert header == ["true \\ pred", *result["genres"]]
        assert [[int(x) for x in r[1:]] for r in rows] == m["confusion_matrix"]
        assert sum(map(sum, m["confusion_matrix"])) == result["images"]


def test_evaluation_text_held_out_splits_and_summary(evaluation):
    result, text = evaluation
    tables = _tables(text)
    best = result["best_head"]
    header, *rows = tables[f"held out, {best}"]
    assert header == ["split", "covers", "genres", "bal. acc. (in CV)", "ECE", "right at ≥0.5", "right at ≥0.7",
                      "familiarity"]
    assert [r[0] for r in rows] == list(result["heldout"]) == ["heldout:discogs", "heldout:spotify"]
    for r in rows:
        split = result["heldout"][r[0]]
        h = split["heads"][best]
        assert r[1:] == [str(split["test_covers"]), ", ".join(split["genres"]),
                         f"{h['balanced_accuracy']:.3f} ({h['in_cv_balanced_accuracy']:.3f})", f"{h['ece']:.3f}",
                         _kept(h["precision_at"]["0.5"]), _kept(h["precision_at"]["0.7"]),
                         f"{split['familiarity']['median']:.2f}"], r[0]

    header, *rows = tables["every head, held out"]
    assert header[:2] == ["head", "held-out bal. acc. (mean)"]
    assert {r[0].removesuffix(" *") for r in rows} == set(result["heldout_summary"])
    for r in rows:
        name = r[0].removesuffix(" *")
        h = result["heldout_summary"][name]
        low = h["lowest_precision_at"]
        assert r[1:] == [f"{h['balanced_accuracy']:.3f}", f"{h['worst_ece']:.3f}", f"{low['0.5']:.2f}",
                         f"{low['0.7']:.2f}", f"{result['heads'][name]['balanced_accuracy']:.3f}"], name


def test_evaluation_text_per_input_folds_and_unknown_genres(evaluation):
    result, text = evaluation
    lines = text.splitlines()
    best = result["best_head"]
    assert f"per input, {best} (out-of-fold):" in lines
    assert set(result["by_source"]) == {"discogs", "spotify"}
    for source, r in result["by_source"].items():
        h = r["heads"][best]
        line = (f"  {source} ({r['covers']} covers): balanced accuracy {h['balanced_accuracy']:.3f}, "
                f"ECE {h['ece']:.3f}; recall " + ", ".join(f"{g} {v:.2f}" for g, v in h["recall"].items()))
        assert line in lines
    assert result["by_source"]["discogs"]["covers"] == 60
    seconds = [ln for ln in lines if ln.startswith("seconds per fold: ")]
    assert len(seconds) == 1 and len(seconds[0].split(": ")[1].split(", ")) == result["folds"]

    unknown = result["unknown_genres"]
    header, *rows = _tables(text)[f"genres the model does not know, {best}: share of their covers kept with "
                                  "confidence"]
    assert header == ["left out", "covers", "≥0.5 raw", "≥0.5 OOF temperature", "≥0.5 calibrated",
                      "≥0.7 calibrated"]
    assert [r[0] for r in rows] == [*unknown["genres"], "mean"]
    for r in rows:
        g = unknown["mean"][best] if r[0] == "mean" else unknown["genres"][r[0]]["heads"][best]
        covers = "" if r[0] == "mean" else str(unknown["genres"][r[0]]["test_covers"])
        assert r[1:] == [covers, f"{g['raw']['0.5']:.2f}", f"{g['out_of_fold_temperature']['0.5']:.2f}",
                         f"{g['calibrated']['0.5']:.2f}", f"{g['calibrated']['0.7']:.2f}"], r[0]


def _columns(line: str) -> list[str]:
    """The cells of a row of a table printed without a box (two or more spaces between cells)."""
    return re.split(r"\s{2,}", line.strip())


def test_catalog_summary_text_says_what_its_json_says(sample_covers, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", WIDE)
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("cover_url\n" + "".join(f"{p}\n" for p in sample_covers[::4])
                       + f"{tmp_path / 'gone.jpg'}\n{tmp_path / 'gone2.jpg'}\n{catalog}\n")
    args = ["catalog", str(catalog), "--keep", "rock,pop,country", "--no-cache"]
    as_json = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a.parquet"), "--json"])
    as_text = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b.parquet")])
    assert as_json.exit_code == as_text.exit_code == 0, (as_json.output, as_text.output)
    summary = json.loads(as_json.stdout.strip().splitlines()[-1])
    lines = as_text.stdout.splitlines()
    first = re.fullmatch(r"(\d+) rows in · (\d+) scored · (\d+) failed · [\d.]+ rows/s \([\d.]+s\)", lines[0])
    assert first, lines[0]
    failed = summary["failed"]
    assert [int(x) for x in first.groups()] == [summary["rows"], summary["scored"], sum(failed.values())] == [13, 10, 3]
    table = {_columns(ln)[0]: int(_columns(ln)[1]) for ln in lines[2:2 + len(failed)]}
    assert _columns(lines[1]) == ["failure", "rows"] and table == failed
    kept = summary["kept"]
    assert kept, summary
    assert lines[2 + len(failed)] == ("kept: " + ", ".join(f"{g} {n}" for g, n in sorted(
        kept.items(), key=lambda kv: -kv[1])) + f" (total {sum(kept.values())})")
    assert lines[-1] == f"wrote {tmp_path / 'b.parquet'}"


def test_cache_info_text_says_what_its_json_says(cdn, no_proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", WIDE)
    monkeypatch.setenv("SCORER_CACHE_DIR", str(tmp_path / "cache"))
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("cover_url\n" + "".join(f"{cdn.base}/img/r{i}.jpg\n" for i in range(3)))
    scored = CliRunner().invoke(app, ["catalog", str(catalog), "--out", str(tmp_path / "s.parquet"),
                                      "--allow-private-hosts"])
    assert scored.exit_code == 0, scored.output
    report = json.loads(CliRunner().invoke(app, ["cache", "info", "--json"]).stdout)
    text = CliRunner().invoke(app, ["cache", "info"]).stdout.splitlines()
    assert text[0] == f"cache: {report['root']} ({report['bytes'] / 1e6:.1f} MB)"
    assert _columns(text[1]) == ["part", "files", "on disk", "what"]
    parts = {cells[0]: cells[1:] for cells in map(_columns, text[2:2 + len(report["parts"])])}
    assert parts == {name: [str(p["files"]), f"{p['bytes'] / 1e6:.1f} MB", p["what"]]
                     for name, p in report["parts"].items()}
    assert report["parts"]["covers"]["files"] >= 3  # the covers just fetched are in it
    assert text[-1] == f"covers are kept to {report['covers_max_bytes'] / 1e9:g} GB (--cache-max-size, " \
                       "SCORER_CACHE_MAX_SIZE)"


def test_head_names_are_whole_on_an_80_column_terminal(evaluation, monkeypatch, capsys):
    from scorer.cli.console import print_evaluation

    result, _ = evaluation
    monkeypatch.setenv("COLUMNS", "80")
    print_evaluation(result)
    text = capsys.readouterr().out
    tables = _tables(text)
    for title in ("in-collection (out-of-fold)", "every head, held out"):
        names = {r[0] for r in tables[title][1:] if r[0]}  # a row wrapped onto two lines: the name on the first
        assert names == {*(n for n in result["heads"] if n != result["best_head"]), f"{result['best_head']} *"}, title
