"""The report of a scored output (``scorer catalog/links/playlist --out``): a summary over every
row, and a gallery of covers with their top genre and probabilities, filterable by genre, by
``kept`` and by status. Runtime dependencies only.

Covers are read again through the fetcher, so covers fetched at scoring time come from the cover
cache. A cover that cannot be read still gets its tile, with the reason.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scorer.decode import decode_image
from scorer.errors import RowError, UsageError
from scorer.fetch import CoverCache, CoverFetcher, FetchOptions
from scorer.heads.calibration import expected_calibration_error, reliability
from scorer.insight.page import Page, ReportDir, Section, esc, filter_bar, genre_colour, prob_bars, select_filter, table
from scorer.insight.svg import confusion_heatmap, reliability_diagram
from scorer.sinks.dataset import META_DIR
from scorer.sinks.parquet import METADATA_KEY

FAILED = "(failed)"
#: columns shown on a tile when present, in this order (catalogs, link files and playlists differ)
TITLE_COLUMNS = ("title", "album", "name", "id", "album_id", "track_id")
SUBTITLE_COLUMNS = ("artist", "artists", "album")


def is_scored_output(path: Path) -> bool:
    """A ``.parquet`` file, or a dataset folder written by ``scorer catalog --out DIR``."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in (".parquet", ".pq")
    return (path / META_DIR / "manifest.json").is_file()


def read_scored(path: Path) -> tuple[pa.Table, dict]:
    """Every row of a scored output, and its ``scorer`` metadata (genres, model, run options)."""
    path = Path(path)
    try:
        if path.is_dir():
            parts = sorted(path.glob("part-*.parquet"))
            if not parts:
                raise UsageError(f"{path}: a scorer dataset folder with no part files yet")
            tables = [pq.read_table(p) for p in parts]
            meta_raw = tables[0].schema.metadata or {}
            table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables], promote_options="default")
        else:
            table = pq.read_table(path)
            meta_raw = table.schema.metadata or {}
    except (pa.ArrowInvalid, OSError) as e:
        raise UsageError(f"{path}: not a readable Parquet file ({e})") from e
    if METADATA_KEY not in meta_raw:
        raise UsageError(f"{path}: not written by scorer (no 'scorer' metadata); give the --out of "
                         "scorer catalog, links or playlist")
    meta = json.loads(meta_raw[METADATA_KEY])
    missing = {"status", "genre", "kept", "cover_url"} - set(table.column_names)
    if missing:
        raise UsageError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return table, meta


def _resolver(source: Path, meta: dict) -> Callable[[str], str]:
    """Relative cover paths are relative to the scored input file; try where it was, then the output's folder."""
    bases = []
    if meta.get("input") and "://" not in str(meta["input"]):
        bases.append(Path(meta["input"]).expanduser().parent)
    bases.append(Path(source).resolve().parent if Path(source).is_file() else Path(source).resolve())

    def resolve(ref: str) -> str:
        ref = (ref or "").strip()
        if not ref or ":" in ref.split("/", 1)[0] or Path(ref).is_absolute():
            return ref
        for base in bases:
            if (base / ref).is_file():
                return str((base / ref).resolve())
        return ref

    return resolve


def scored_report(source: Path, out: Path, limit: int = 600, seed: int = 0, fetch: FetchOptions | None = None,
                  log: Callable[[str], None] | None = None) -> Path:
    """Write the report of a scored output to ``out``; returns the path of ``index.html``."""
    with ReportDir(out) as report:  # refuses a bad --out before the input is read
        table, meta = read_scored(source)
        return _write(report, table, meta, Path(source).name, str(source), _resolver(source, meta), {}, limit, seed,
                      fetch, log)


def frame_report(frame, out: Path, limit: int = 600, seed: int = 0, fetch: FetchOptions | None = None,
                 log: Callable[[str], None] | None = None) -> Path:
    """The report of a DataFrame that ``scorer.score`` returned (its ``attrs["scorer"]`` names the genres, head
    and filter); covers given as images in memory are shown as they were given."""
    from scorer.sources.memory import cover_refs

    meta = frame.attrs.get("scorer") or {}
    if "genres" not in meta:
        raise UsageError("the DataFrame was not returned by scorer.score (no attrs['scorer']); give a scored "
                         "DataFrame, or the Parquet output of scorer catalog, links or playlist")
    missing = {"status", "genre", "kept", "cover_url"} - {str(c) for c in frame.columns}
    if missing:
        raise UsageError(f"the DataFrame lacks column(s) {', '.join(sorted(missing))}")
    with ReportDir(out) as report:
        memory: dict[str, object] = {}
        refs, _ = cover_refs(frame["cover_url"].tolist(), memory)
        columns = {}
        for name in frame.columns:  # what Arrow can hold; the gallery shows titles, artists and scores
            try:
                columns[str(name)] = pa.array(frame[name].tolist(), from_pandas=True)
            except (pa.ArrowException, TypeError, ValueError):
                continue
        columns["cover_url"] = pa.array(refs, pa.string())
        return _write(report, pa.table(columns), meta, "a DataFrame", "(in memory)", _resolver(Path.cwd(), meta),
                      memory, limit, seed, fetch, log)


def _write(report: ReportDir, table: pa.Table, meta: dict, name: str, source: str, resolve: Callable[[str], str],
           memory: dict[str, object], limit: int, seed: int, fetch: FetchOptions | None,
           log: Callable[[str], None] | None) -> Path:
    genres: list[str] = list(meta["genres"])
    rows = table.to_pylist()
    page = Page(f"Scored covers: {name}", {
        "input": meta.get("input", ""), "output": source, "rows": len(rows),
        "model": meta.get("model_version") or (meta.get("model") or {}).get("version", ""),
        "head": meta.get("head", ""), "keep": ", ".join(meta.get("keep") or []) or "(none)",
        **({"min prob": meta["min_prob"]} if meta.get("min_prob") is not None else {})})
    page.add(Section("summary", "Summary", _summary(rows, genres)))
    calibration = _model_calibration(meta)
    if calibration:
        page.add(Section("calibration", "Calibration", calibration))
    if "label" in table.column_names:
        labelled = [r for r in rows if r["status"] == "ok" and r.get("label") in genres]
        if labelled:
            page.add(Section("labels", "Predictions against the input's labels", _against_labels(labelled, genres)))
    shown = _sample(len(rows), limit, seed)
    if log:
        log(f"drawing {len(shown)} of {len(rows)} rows")
    thumbs = _thumbnails([rows[i]["cover_url"] for i in shown], resolve, report, fetch, memory)
    page.add(Section("gallery", "Covers", _gallery([(i, rows[i]) for i in shown], genres, thumbs, len(rows))))
    return report.finish(page.render())


def _sample(n: int, limit: int, seed: int) -> list[int]:
    if n <= limit:
        return list(range(n))
    return sorted(np.random.default_rng(seed).choice(n, size=limit, replace=False).tolist())


def _summary(rows: list[dict], genres: list[str]) -> str:
    ok = [r for r in rows if r["status"] == "ok"]
    failed = Counter(r["status"] for r in rows if r["status"] != "ok")
    top = Counter(r["genre"] for r in ok)
    kept = Counter(r["genre"] for r in ok if r["kept"])
    body = [f'<p class="note">{len(rows)} rows: {len(ok)} scored, {sum(failed.values())} failed, '
            f'{sum(kept.values())} kept. Top genre counts are over every scored row; the gallery below may '
            f'show a sample.</p>']
    table_rows = []
    for i, g in enumerate(genres):
        n = top.get(g, 0)
        share = n / len(ok) if ok else 0.0
        mean_p = np.mean([r.get(f"p_{g}") or 0.0 for r in ok]) if ok else 0.0
        table_rows.append([f'<span class="swatch" style="background:{genre_colour(i)}"></span>{esc(g)}', str(n),
                           f'<span class="bt" style="display:inline-block;width:120px;height:8px;background:#e6e9ec">'
                           f'<span style="display:block;height:100%;width:{share * 100:.1f}%;'
                           f'background:{genre_colour(i)}"></span>'
                           f'</span> {share:.0%}', f"{mean_p:.3f}", str(kept.get(g, 0))])
    body.append(table(["genre", "top genre of", "share", "mean probability", "kept"], table_rows))
    if failed:
        reasons: dict[str, Counter] = {}
        for r in rows:
            if r["status"] != "ok":
                reasons.setdefault(r["status"], Counter())[r.get("error") or ""] += 1
        body.append("<h3>Failed rows</h3>" + table(
            ["status", "rows", "most common reason"],
            [[esc(s), str(n), esc(reasons[s].most_common(1)[0][0])] for s, n in failed.most_common()]))
    return "".join(body)


def _against_labels(rows: list[dict], genres: list[str]) -> str:
    index = {g: i for i, g in enumerate(genres)}
    cm = np.zeros((len(genres), len(genres)), dtype=np.int64)
    for r in rows:
        cm[index[r["label"]], index[r["genre"]]] += 1
    support = cm.sum(axis=1)
    recall = np.divide(np.diag(cm), support, out=np.zeros(len(genres)), where=support > 0)
    balanced = recall[support > 0].mean()
    proba = np.array([[r.get(f"p_{g}") or 0.0 for g in genres] for r in rows], dtype=np.float64)
    y = np.array([index[r["label"]] for r in rows])
    ece = expected_calibration_error(proba, y)
    note = (f'<p class="note">{len(rows)} scored rows whose <code>label</code> is one of the model\'s genres: '
            f'accuracy {np.trace(cm) / cm.sum():.3f}, balanced accuracy {balanced:.3f}, expected calibration error '
            f'{ece:.3f} (the reliability diagram shows it per bin). These figures are optimistic if the covers were '
            f'part of the model\'s training set.</p>')
    diagram = reliability_diagram({"these rows": reliability(proba, y)}, "reliability on the labelled rows")
    return (note + f'<div class="heatmaps"><figure>{confusion_heatmap(cm, genres, "label vs prediction")}</figure>'
            f'<figure>{diagram}</figure></div>')


def _model_calibration(meta: dict) -> str:
    """The scoring head's calibration as measured by the model's cross-validation (its manifest)."""
    head = meta.get("head")
    cal = ((meta.get("model") or {}).get("calibration") or {}).get("heads", {}).get(head)
    if not cal:
        return ""
    assert head is not None  # a manifest's heads are named by strings
    return calibration_figures(head, cal)


def calibration_figures(head: str, cal: dict) -> str:
    """A head's calibration as its model measured it: a note and the reliability diagram, out of fold and (when
    the model was measured on held-out collections) on covers of collections it did not train on."""
    used = cal.get("used", True)
    t, slope = (cal["temperature"], cal.get("slope", 0.0)) if used else (1.0, 0.0)
    shipped = f"temperature {t:.2f}" + (f", growing as familiarity falls (slope {slope:.2f})" if slope else "")
    held = cal.get("heldout")
    note = (f'<p class="note">How far <code>genre_prob</code> can be trusted, from the model\'s cross-validation: '
            f'head <code>{esc(head)}</code> ships {shipped}. Expected calibration error on covers like the training '
            f'ones (out of fold): {cal["ece_before"]:.3f} before and {cal["ece_after"]:.3f} after it'
            + (f'; on covers of collections the model did not train on (held out): {held["ece_before"]:.3f} before '
               f'and {held["ece_after"]:.3f} after' if held else "")
            + '. On the diagonal, a probability of 0.8 is right 80% of the time.</p>')
    curves = {"out of fold, before": cal["reliability_before"], "out of fold, shipped": cal["reliability_after"]}
    if held:
        curves |= {"held out, before": held["reliability_before"], "held out, shipped": held["reliability_after"]}
    diagram = reliability_diagram(curves, f"{head}: reliability (model CV)")
    return note + f"<figure>{diagram}</figure>"


def _thumbnails(refs: list[str], resolve: Callable[[str], str], report: ReportDir,
                fetch: FetchOptions | None, memory: dict[str, object]) -> dict[str, str]:
    """``ref → img path`` for every cover that could be read, or ``ref → "!reason"``; each cover once.

    A cover in the cover cache is shown as cached, without asking its server again: it is the
    cover that was scored, and the report works when the server is gone.
    """
    unique = list(dict.fromkeys(refs))
    out: dict[str, str] = {}
    fetch = fetch or FetchOptions()
    cache = CoverCache.default() if fetch.cache else None

    def cached_or_fetched(fetcher: CoverFetcher):
        missing = []
        for ref in unique:
            hit = cache.lookup(ref) if cache and ref.lower().startswith(("http://", "https://")) else None
            if hit:
                yield ref, hit[1]
            else:
                missing.append(ref)
        yield from fetcher.stream(missing, resolve)

    with CoverFetcher(fetch, cache=cache) as fetcher:
        fetcher.memory.update(memory)
        for ref, got in cached_or_fetched(fetcher):
            if isinstance(got, RowError):
                out[ref] = f"!{got.code}: {got.message}"
                continue
            try:
                image = decode_image(got, size=138)
            except RowError as e:
                out[ref] = f"!{e.code}: {e.message}"
                continue
            out[ref] = report.save_image("c-" + hashlib.sha1(ref.encode()).hexdigest()[:16], image)
    return out


def _first(row: dict, columns: tuple[str, ...]) -> str:
    for c in columns:
        v = row.get(c)
        if v not in (None, ""):
            return ", ".join(map(str, v)) if isinstance(v, list) else str(v)
    return ""


def _gallery(rows: list[tuple[int, dict]], genres: list[str], thumbs: dict[str, str], total: int) -> str:
    tiles = []
    any_failed = False
    for i, r in rows:
        ok = r["status"] == "ok"
        any_failed |= not ok
        genre = r["genre"] if ok else FAILED
        kept = "true" if r["kept"] else "false"
        thumb = thumbs.get(r["cover_url"], "!")
        title = _first(r, TITLE_COLUMNS) or Path(str(r["cover_url"])).name
        sub = _first(r, SUBTITLE_COLUMNS)
        picture = (f'<div class="placeholder">{esc(thumb[1:] or "no cover")}</div>' if thumb.startswith("!")
                   else f'<img src="{esc(thumb)}" alt="{esc(title)}" loading="lazy">')
        if ok:
            badge = '<span class="badge">kept</span>' if r["kept"] else '<span class="badge drop">dropped</span>'
            what = (f'<div><b>{esc(r["genre"])}</b> {r["genre_prob"]:.2f} {badge}</div>'
                    + prob_bars({g: r.get(f"p_{g}") or 0.0 for g in genres}, genres))
        else:
            what = (f'<div><span class="badge err">{esc(r["status"])}</span></div>'
                    f'<div class="s">{esc(r.get("error") or "")}</div>')
        cls = "tile" + (" kept" if r["kept"] else "") + ("" if ok else " err")
        tiles.append(f'<div class="{cls}" data-genre="{esc(genre)}" data-kept="{kept}" '
                     f'data-status="{"ok" if ok else "failed"}" title="row {i}: {esc(r["cover_url"])}">'
                     f'{picture}<div class="t">{esc(title)}</div><div class="s">{esc(sub)}</div>{what}</div>')
    extra = (select_filter("kept", "kept:", [("", "all"), ("true", "kept"), ("false", "not kept")])
             + select_filter("status", "status:", [("", "all"), ("ok", "scored"), ("failed", "failed")]))
    note = (f'<p class="note">Showing {len(rows)} of {total} rows (a seeded random sample, in input order). '
            f'Tiles with a green border were kept by the run\'s <code>--keep</code> filter.</p>'
            if len(rows) < total else
            '<p class="note">Every row, in input order. Tiles with a green border were kept by the run\'s '
            '<code>--keep</code> filter.</p>')
    bar = filter_bar("gallery-tiles", genres + ([FAILED] if any_failed else []), extra)
    return note + bar + f'<div class="grid" id="gallery-tiles">{"".join(tiles)}</div>'
