"""Terminal output: the end-of-run summary, evaluation tables, model info."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from .score import Summary


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)  # no hard wraps in logs and pipes


def print_summary(summary: Summary, out: Path | str, extra: dict | None = None) -> None:
    c = _console()
    failed = sum(summary.failed.values())
    c.print(f"[bold]{summary.rows}[/] rows in · [green]{summary.scored}[/] scored · "
            f"[red]{failed}[/] failed · {summary.rows_per_second:.1f} rows/s ({summary.seconds:.1f}s)")
    if summary.failed:
        t = Table("failure", "rows", title=None, box=None)
        for code, n in summary.failed.most_common():
            t.add_row(code, str(n))
        c.print(t)
    if summary.kept:
        c.print("kept: " + ", ".join(f"{g} {n}" for g, n in summary.kept.most_common())
                + f" (total {sum(summary.kept.values())})")
    else:
        c.print("kept: none")
    if extra:
        c.print(f"{extra['shards']} shards: {extra['shards_skipped']} unchanged, {extra['rows_rescored']} rows "
                f"scored, {extra['rows_carried']} carried from the last run")
    c.print(f"wrote {out}")


def print_evaluation(result: dict) -> None:
    c = _console()
    genres = result["genres"]
    kind = "stratified group" if result.get("grouped") else "stratified"
    tuned = " (CNN fine-tuned inside each fold)" if result.get("finetuning") else ""
    c.print(f"{result['folds']}-fold {kind} CV{tuned} (seed {result['seed']}) on {result['images']} covers, "
            f"{len(genres)} genres, {result['seconds']:.0f}s")
    t = Table("head", "accuracy", "balanced acc.", *[f"recall {g}" for g in genres])
    best = result.get("best_head")
    ranked = sorted(result["heads"].items(), key=lambda kv: -kv[1]["balanced_accuracy"])
    for name, m in ranked:
        label = f"{name} *" if name == best else name
        t.add_row(label, f"{m['accuracy']:.3f}", f"{m['balanced_accuracy']:.3f}",
                  *[f"{m['recall'][g]:.2f}" for g in genres])
    c.print(t)
    if result.get("fold_seconds"):
        c.print("seconds per fold: " + ", ".join(f"{s:.0f}" for s in result["fold_seconds"]))
    for i, weights in enumerate(result.get("blend_weights") or []):
        c.print(f"blend weights, fold {i + 1}: " + ", ".join(f"{n} {w:.2f}" for n, w in weights.items()))
    c.print("confusion matrices (rows: true genre, columns: predicted)")
    for name, m in ranked:
        cm = Table("true \\ pred", *genres, title=name, title_justify="left")
        for g, row in zip(genres, m["confusion_matrix"]):
            cm.add_row(g, *map(str, row))
        c.print(cm)


def print_model(model) -> None:
    c = _console()
    m = model.manifest
    c.print(f"[bold]{m['name']}[/] {model.version} · genres: {', '.join(model.genres)}")
    others = [p for p in model.variants if p != model.precision]
    c.print(f"featurizer: {model.variants[model.precision]['id']} ({model.precision}"
            + (f"; also {', '.join(others)} with --precision" if others else "")
            + f") · default head: {model.default_head}")
    ts = m.get("training_set") or {}
    c.print(f"trained on {ts.get('images')} covers ({ts.get('source')}, sha256 {str(ts.get('sha256'))[:12]}…)")
    cnn = m["featurizers"]["cnn"]
    if cnn.get("finetuning"):
        r = cnn["finetuning"]["recipe"]
        c.print(f"CNN fine-tuned on these covers: {r['arch']}, {r['epochs']} epochs"
                + (" · flip test-time augmentation" if cnn.get("tta") == "flip" else ""))
    if m.get("blend"):
        c.print("blend: " + ", ".join(f"{n} {w:.2f}" for n, w in m["blend"]["weights"].items()))
    cv = m.get("cv")
    if cv:
        int8 = model.variants.get("int8", {}).get("cv") or {}
        columns = ["head", "accuracy", "balanced acc."] + (["int8 change"] if int8 else [])
        inside = ", CNN fine-tuned inside each fold" if cv.get("finetuned_in_each_fold") else ""
        t = Table(*columns, title=f"{cv['folds']}-fold CV{inside}")
        for name, h in sorted(cv["heads"].items(), key=lambda kv: -kv[1]["balanced_accuracy"]):
            change = [f"{int8[name]['change']:+.3f}"] if name in int8 else ([""] if int8 else [])
            t.add_row(name, f"{h['accuracy']:.3f}", f"{h['balanced_accuracy']:.3f}", *change)
        c.print(t)


def print_playlist(result, out: Path | None) -> None:
    """The per-track table (track, artist, top genre, probability, kept), then the run summary."""
    c = _console()
    info, table = result.playlist, result.table
    c.print(f"[bold]{info.get('name') or info['id']}[/] by {info.get('owner') or '?'} · {table.num_rows} tracks, "
            f"{result.distinct_covers} distinct covers")
    t = Table("#", "track", "artist", "genre", "prob.", "kept", box=None)
    for r in table.select(["position", "title", "artist", "status", "genre", "genre_prob", "kept"]).to_pylist():
        genre = r["genre"] if r["status"] == "ok" else f"[red]{r['status']}[/]"
        prob = f"{r['genre_prob']:.2f}" if r["genre_prob"] is not None else ""
        t.add_row(str(r["position"] + 1), r["title"] or "", r["artist"] or "", genre, prob,
                  "[green]yes[/]" if r["kept"] else "no")
    c.print(t)
    s = result.summary
    c.print(f"{s.scored} scored · {sum(s.failed.values())} not scored"
            + (f" ({', '.join(f'{k} {n}' for k, n in s.failed.most_common())})" if s.failed else "")
            + f" · kept {sum(s.kept.values())}")
    if out is not None:
        c.print(f"wrote {out}")
    if result.saved:
        url = (result.saved.get("external_urls") or {}).get("spotify") or result.saved.get("uri") or result.saved["id"]
        c.print(f"saved the kept tracks as “{result.saved.get('name')}”: {url}")
