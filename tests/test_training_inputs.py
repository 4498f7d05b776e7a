"""Labelled sets with faults, as a user makes them: every bad row or file is left out and counted under its
reason, every input that cannot be used as a whole is one usage error naming it (and its line), and nothing
else is ever raised. Property tests generate folders and CSVs with a known mix; CLI tests quote each message."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from scorer.cli import app
from scorer.errors import InputNotFound, UsageError
from scorer.sources.rows import MAX_FIELD
from scorer.training.dataset import SHOWN, load_labelled

EXAMPLES = int(os.environ.get("SCORER_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
GENRES = ("jazz", "pop", "rock")
FOLDS = 2


def cover_bytes(n: int, fmt: str = "PNG") -> bytes:
    """A small cover unlike every other ``n``: its pixels spell ``n`` out, so no two share content."""
    img = Image.new("RGB", (24, 24), (n * 37 % 256, n * 91 % 256, n * 13 % 256))
    for i in range(24):
        img.putpixel((i, (n >> (i % 8)) % 24), (255 - i * 9, (n * i) % 256, i * 7))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def damaged_bytes(n: int) -> bytes:
    """A PNG cut short: its header reads, its pixels do not."""
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 80).convert("RGB").save(buf, "PNG")
    data = buf.getvalue()
    return data[: len(data) // 2]


#: faults of one row or file, left out and counted under these reasons
ROW_FAULTS = ("missing", "not_an_image", "damaged", "no_genre", "bad_line", "duplicate")
FOLDER_FAULTS = ("not_an_image", "damaged", "empty_folder", "ignored_suffix")


@dataclass
class Plan:
    """What the generator put in a set, and so what loading it must give."""

    good: dict[str, int]  # good covers per genre
    faults: list[str]  # row or file faults, in order
    whole: str | None = None  # a fault of the whole input: a usage error
    expect_skipped: Counter = field(default_factory=Counter)
    expect_duplicates: int = 0
    expect_where: list[str] = field(default_factory=list)  # where each left-out row or file is, in input order
    error_parts: list[str] = field(default_factory=list)  # what the usage error must name


plans = st.builds(
    lambda good, faults, whole: Plan(dict(zip(GENRES, good)), faults, whole),
    st.lists(st.integers(FOLDS, 4), min_size=2, max_size=3),
    st.lists(st.sampled_from(ROW_FAULTS), max_size=6),
    st.sampled_from([None, None, None, "no_genre_column", "open_quote", "small_genre", "all_bad"]),
)


def write_csv(root: Path, plan: Plan) -> Path:
    """``root/labels.csv`` (and its covers in ``root/img``), as ``plan`` says; fills its expectations."""
    (root / "img").mkdir()
    n = 0
    lines: list[str] = []
    good = dict(plan.good)
    if plan.whole == "small_genre":
        good[GENRES[0]] = FOLDS - 1
        plan.error_parts = ["labels.csv", f"genre '{GENRES[0]}' has {FOLDS - 1} cover(s)", f"--folds {FOLDS}"]
    if plan.whole == "all_bad":
        good = {}
        plan.error_parts = ["labels.csv", "no labelled images found"]
    for genre, count in good.items():
        for _ in range(count):
            n += 1
            (root / "img" / f"{n}.png").write_bytes(cover_bytes(n))
            lines.append(f"img/{n}.png,{genre}")
    for fault in plan.faults:
        n += 1
        if fault != "duplicate":
            plan.expect_where.append(f"{root / 'labels.csv'} line {len(lines) + 2}")
            plan.expect_skipped[fault] += 1
            lines.append(_bad_row(root, n, fault))
        elif sum(good.values()):
            lines.append(lines[n % sum(good.values())])  # a good row again: same path, same genre
            plan.expect_duplicates += 1
    header = "path,genre"
    if plan.whole == "no_genre_column":
        header = "path,label"
        plan.error_parts = ["labels.csv", "no genre column", "path,label"]
    if plan.whole == "open_quote":
        lines.insert(1, '"img/open.png,rock')
        plan.error_parts = ["labels.csv line 3", "quote"]
    path = root / "labels.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def _bad_row(root: Path, n: int, fault: str) -> str:
    """The CSV line of one row fault (and its file)."""
    genre = GENRES[n % 2]
    if fault == "missing":
        return f"img/gone-{n}.png,{genre}"
    data = {"not_an_image": b"not an image", "damaged": damaged_bytes(n)}.get(fault) or cover_bytes(n)
    (root / "img" / f"{n}.png").write_bytes(data)
    return {"no_genre": f"img/{n}.png,", "bad_line": f"img/{n}.png,{genre},extra"}.get(fault, f"img/{n}.png,{genre}")


def write_folder(root: Path, good: dict[str, int], faults: list[str], plan: Plan) -> Path:
    n = 0
    for genre, count in good.items():
        (root / genre).mkdir()
        for _ in range(count):
            n += 1
            (root / genre / f"{n}.jpg").write_bytes(cover_bytes(n, "JPEG"))
    for fault in faults:
        n += 1
        genre = list(good)[n % len(good)]
        if fault == "not_an_image":
            (root / genre / f"{n}.jpg").write_text("<html>not an image</html>")
        elif fault == "damaged":
            (root / genre / f"{n}.png").write_bytes(damaged_bytes(n))
        elif fault == "empty_folder":
            (root / f"empty{n}").mkdir()
            (root / f"empty{n}" / "notes.txt").write_text("no covers here")
        elif fault == "ignored_suffix":  # not a cover (no image suffix): neither loaded nor counted
            (root / genre / f"{n}.txt").write_text("a note")
        if fault != "ignored_suffix":
            plan.expect_skipped[fault] += 1
            where = root / f"empty{n}" if fault == "empty_folder" else root / genre / f"{n}.{_SUFFIX[fault]}"
            plan.expect_where.append(str(where))
    plan.expect_where.sort(key=lambda w: Path(w).relative_to(root).parts)  # folders, then files, sorted by name
    return root


_SUFFIX = {"not_an_image": "jpg", "damaged": "png"}


def check(plan: Plan, load) -> None:
    """Loading gives exactly the good covers and the counted faults, or the one usage error expected."""
    if plan.error_parts:
        with pytest.raises(UsageError) as caught:
            load()
        message = caught.value.cli_message
        assert "\n" not in message
        for part in plan.error_parts:
            assert part in message, (part, message)
        return
    ds = load()
    assert ds.counts() == {g: n for g, n in plan.good.items() if n}
    assert ds.skipped == plan.expect_skipped
    assert len(ds.skipped_first) == min(SHOWN, sum(plan.expect_skipped.values()))
    for got, where in zip(ds.skipped_first, plan.expect_where):
        assert got.startswith(f"{where}: "), (got, where)
    assert ds.dropped_duplicates == plan.expect_duplicates
    assert ds.dropped_conflicts == 0


@SETTINGS
@given(plans)
def test_generated_csv_sets(plan):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(Path(tmp), plan)
        check(plan, lambda: load_labelled(path, folds=FOLDS, near_duplicates=False))


@SETTINGS
@given(st.lists(st.integers(FOLDS, 4), min_size=2, max_size=3), st.lists(st.sampled_from(FOLDER_FAULTS), max_size=5))
def test_generated_folders(good, faults):
    plan = Plan(dict(zip(GENRES, good)), faults)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_folder(Path(tmp), plan.good, faults, plan)
        check(plan, lambda: load_labelled(root, folds=FOLDS))


@SETTINGS
@given(st.sampled_from([b"", b"path,genre\n", b"genre,path,artist\n"]), st.binary(max_size=300))
def test_any_bytes_as_a_csv_are_one_usage_error(header, body):
    """No file beside the CSV is a cover (the CSV itself is not an image): whatever its bytes, the run is one
    usage error of one line, never another exception."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels.csv"
        path.write_bytes(header + body)
        with pytest.raises(UsageError) as caught:
            load_labelled(path, folds=FOLDS, near_duplicates=False)
        assert "\n" not in caught.value.cli_message and str(path) in caught.value.cli_message


def test_a_bad_file_never_reaches_the_grouping(tmp_path):
    """Near-duplicate grouping decodes every cover (perceptual hashes): a file that is not an image, once a
    traceback from there, is left out before it."""
    plan = Plan({"jazz": 2, "pop": 2}, ["not_an_image", "damaged", "missing"])
    path = write_csv(tmp_path, plan)
    ds = load_labelled(path, folds=FOLDS)
    assert ds.skipped == Counter({"not_an_image": 1, "damaged": 1, "missing": 1})
    assert ds.grouping["groups"] == 4
    assert ds.skipped_first == [f"{path} line 6: img/5.png: not a recognised image format",
                                f"{path} line 7: img/6.png: damaged image: image file is truncated",
                                f"{path} line 8: img/gone-7.png: no such file"]


# ------------------------------------------------------------------ one line per fault of a whole input


def _sets(tmp_path: Path, good: dict[str, int]) -> Path:
    plan = Plan(good, [])
    return write_csv(tmp_path, plan)


def _cli_error(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_input_that_does_not_exist(tmp_path):
    line = _cli_error("evaluate", str(tmp_path / "nowhere"))
    assert line == (f"error: {tmp_path / 'nowhere'}: no such file or folder; expected a folder with one sub-folder "
                    f"per genre, a CSV with path,genre columns, or a link file (.tsv: <cover URL><TAB><genre>/"
                    f"<album_id>.jpg)")
    with pytest.raises(InputNotFound):
        load_labelled(tmp_path / "nowhere")


def test_missing_column(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,genre\na.png,rock\n")
    assert _cli_error("evaluate", str(path)) == (
        f"error: {path}: no path column (line 1 names file,genre); the first line must name the path and genre "
        f"columns: path,genre")


def test_open_quote(tmp_path):
    path = _sets(tmp_path, {"jazz": 2, "pop": 2})
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:3], '"img/5.png,pop', *lines[3:]]) + "\n")
    assert _cli_error("train", str(path), "--out", str(tmp_path / "m")) == (
        f"error: {path} line 4: a quote opens a field here and is never closed, so it takes in the lines after "
        f"it; close it or remove it")


def test_not_utf8(tmp_path):
    path = _sets(tmp_path, {"jazz": 2, "pop": 2})
    path.write_bytes(path.read_bytes() + "img/caf\u00e9.png,pop\n".encode("latin-1"))
    assert _cli_error("evaluate", str(path)) == (
        f"error: {path} line 6: not UTF-8 text; save the CSV as UTF-8")


def test_a_line_too_long_for_a_csv(tmp_path):
    path = _sets(tmp_path, {"jazz": 2, "pop": 2})
    path.write_text(path.read_text() + '"' + "x" * (MAX_FIELD + 1) + '",pop\n')
    before = csv.field_size_limit(4 * MAX_FIELD)  # whatever the process had: the reader sets its own
    try:
        assert _cli_error("evaluate", str(path)) == (f"error: {path} line 6: not a readable CSV line (field larger "
                                                     f"than field limit ({MAX_FIELD})); fix the line")
    finally:
        csv.field_size_limit(before)


def test_one_genre(tmp_path):
    path = _sets(tmp_path, {"jazz": 3})
    (tmp_path / "img" / "x.png").write_text("not an image")
    path.write_text(path.read_text() + "img/x.png,pop\n")
    assert _cli_error("evaluate", str(path)) == (
        f"error: {path}: need at least two genres, found 1 ['jazz'] (1 left out: 1 not an image); add covers of "
        f"another genre")


def test_genre_too_small_for_the_folds(tmp_path):
    path = _sets(tmp_path, {"jazz": 1, "pop": 5, "rock": 2})
    message = (f"{path}: genre 'jazz' has 1 cover(s) (and 1 other genre(s) too few); --folds 3 needs at least 3 of "
               f"each genre: add covers of it, remove it, or lower --folds")
    assert _cli_error("evaluate", str(path), "--folds", "3") == f"error: {message}"
    assert _cli_error("train", str(path), "--out", str(tmp_path / "m"), "--folds", "3") == f"error: {message}"
    import scorer

    with pytest.raises(UsageError) as caught:  # the library names its parameter
        scorer.evaluate(path, folds=3)
    assert str(caught.value) == message.replace("--folds", "folds")
    assert not (tmp_path / "m").exists()


def test_no_cover_left(tmp_path):
    (tmp_path / "rock").mkdir()
    (tmp_path / "rock" / "a.jpg").write_text("<html>")
    (tmp_path / "pop").mkdir()
    message = (f"{tmp_path}: no labelled images found; left out 1 empty genre folder, 1 not an image; first: "
               f"{tmp_path / 'pop'}: no image files in it; {tmp_path / 'rock' / 'a.jpg'}: not a recognised image "
               f"format; check the paths and files")
    assert _cli_error("evaluate", str(tmp_path)) == f"error: {message}"
    assert _cli_error("report", str(tmp_path), "--out", str(tmp_path / "r")) == f"error: {message}"


def test_left_out_rows_are_in_the_summary(tmp_path):
    """A run with bad rows goes on without them, and says so: --json's dataset and the notes."""
    plan = Plan({"jazz": 3, "pop": 3}, ["missing", "not_an_image"])
    path = write_csv(tmp_path, plan)
    result = CliRunner().invoke(app, ["evaluate", str(path), "--folds", "2", "--heads", "cnn-logreg", "--json"])
    assert result.exit_code == 0, result.output
    dataset = json.loads(result.stdout.strip().splitlines()[-1])["dataset"]
    assert dataset["per_genre"] == {"jazz": 3, "pop": 3}
    assert dataset["skipped"] == {"missing": 1, "not_an_image": 1}
    assert dataset["skipped_first"] == [f"{path} line 8: img/gone-7.png: no such file",
                                        f"{path} line 9: img/8.png: not a recognised image format"]
    result = CliRunner().invoke(app, ["evaluate", str(path), "--folds", "2", "--heads", "cnn-logreg"])
    assert result.exit_code == 0, result.output
    assert (f"left out: 2 row(s) or file(s) (1 file not found, 1 not an image); first: {path} line 8: "
            f"img/gone-7.png: no such file; {path} line 9: img/8.png: not a recognised image format") in result.output
    result = CliRunner().invoke(app, ["train", str(path), "--out", str(tmp_path / "m"), "--folds", "0",
                                      "--heads", "cnn-logreg"])
    assert result.exit_code == 0, result.output
    assert (f"left out 2 row(s) or file(s) (1 file not found, 1 not an image); first: {path} line 8: "
            f"img/gone-7.png: no such file; {path} line 9: img/8.png: not a recognised image format") in result.output
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["training_set"]["left_out"] == {"missing": 1, "not_an_image": 1}
    assert manifest["training_set"]["images"] == 6


def test_a_link_file_with_covers_that_cannot_be_fetched_or_read(covers_dir, tmp_path, monkeypatch):
    """A link file's covers that cannot be fetched are counted by status (``unfetched``); those fetched but
    not readable are left out and counted as any other file."""
    from scorer.fetch import FetchOptions
    from tests.fakes.cdn import CoverCDN

    monkeypatch.setenv("SCORER_CACHE_DIR", str(tmp_path / "cache"))
    with CoverCDN(sorted(covers_dir.rglob("*.jpg"))[:40]) as cdn:
        names, seen = [], set()
        for i in range(200):  # six names the CDN serves six different covers at
            if cdn.cover_index(f"a{i}.jpg") not in seen and len(names) < 6:
                seen.add(cdn.cover_index(f"a{i}.jpg"))
                names.append(f"a{i}.jpg")
        good = [f"{cdn.base}/img/{name}\t{GENRES[k % 2]}/{k}.jpg\n" for k, name in enumerate(names)]
        bad = [f"{cdn.base}/bad/gone\tjazz/100.jpg\n", f"{cdn.base}/bad/html\tpop/101.jpg\n",
               f"{cdn.base}/bad/truncated.jpg\tpop/102.jpg\n"]
        links = tmp_path / "links.tsv"
        links.write_text("".join(good + bad))
        ds = load_labelled(links, FetchOptions(allow_private_hosts=True, retries=0), folds=FOLDS)
    assert ds.counts() == {"jazz": 3, "pop": 3}
    assert dict(ds.unfetched) == {"http_404": 1, "not_an_image": 1}
    assert dict(ds.skipped) == {"damaged": 1}
    assert ds.skipped_first == [f"{links}: {cdn.base}/bad/truncated.jpg: damaged image: image file is truncated "
                                f"(6 bytes not processed)"]


def test_perceptual_hashes_name_a_file_that_is_not_an_image(tmp_path):
    """For callers that did not check their covers first: one error naming the file, not Pillow's."""
    from scorer.training.groups import perceptual_hashes

    bad = tmp_path / "bad.jpg"
    bad.write_text("<html>")
    with pytest.raises(ValueError, match=rf"^{bad}: not a readable image \(cannot identify image file"):
        perceptual_hashes([str(bad)], ["0" * 64], cache_root=tmp_path / "cache")
