"""Terminal output: the end-of-run summary, evaluation tables, model info."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from scorer.scoring import Summary


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


def _print_heads_network(c, network: dict | None) -> None:
    """Which network the heads were fitted on (``scorer.training.networks``)."""
    if network:
        c.print(f"heads on: {network['description']} ({network['id']})")


def _print_left_out(c: Console, dataset: dict) -> None:
    """The labelled rows and files left out (``scorer.training.dataset.SKIP_REASONS``), the first few named."""
    from scorer.training.dataset import SKIP_REASONS

    if skipped := dataset.get("skipped"):
        reasons = ", ".join(f"{n} {SKIP_REASONS.get(r, r)}" for r, n in skipped.items())
        c.print(f"left out: {sum(skipped.values())} row(s) or file(s) ({reasons}); first: "
                + "; ".join(dataset.get("skipped_first", [])), markup=False, highlight=False)


def print_evaluation(result: dict) -> None:
    c = _console()
    genres = result["genres"]
    kind = "stratified group" if result.get("grouped") else "stratified"
    tuned = " (CNN fine-tuned inside each fold)" if result.get("finetuning") else ""
    c.print(f"{result['folds']}-fold {kind} CV{tuned} (seed {result['seed']}) on {result['images']} covers, "
            f"{len(genres)} genres, {result['seconds']:.0f}s")
    _print_heads_network(c, result.get("network"))
    grouping = (result.get("dataset") or {}).get("grouping") or {}
    if grouping.get("near_duplicates"):
        nd = grouping["near_duplicates"]
        c.print(f"groups: {grouping['groups']} ({nd['clusters']} near-duplicate clusters of {nd['covers_in_clusters']}"
                f" covers" + (f"; {grouping['artists']['known']} artists" if grouping.get("artists") else "") + ")")
    _print_left_out(c, result.get("dataset") or {})
    calibration = (result.get("calibration") or {}).get("heads") or {}
    best = result.get("best_head")
    ranked = sorted(result["heads"].items(), key=lambda kv: -kv[1]["balanced_accuracy"])
    if result.get("heldout"):
        print_heldout(c, result, best)
    t = Table("head", "accuracy", "balanced acc.", "ECE", "ECE calibrated", "right at ≥0.5", "right at ≥0.7",
              title="in-collection (out-of-fold)", title_justify="left")
    t.columns[0].no_wrap = True  # head names whole on an 80-column terminal ('cnn-logr…' otherwise)
    for name, m in ranked:
        cal = calibration.get(name)
        t.add_row(f"{name} *" if name == best else name, f"{m['accuracy']:.3f}", f"{m['balanced_accuracy']:.3f}",
                  f"{cal['ece_before']:.3f}" if cal else "", f"{cal['ece_after']:.3f}" if cal else "",
                  *(_kept(m.get("precision_at"), t) for t in ("0.5", "0.7")))
    c.print(t)
    top = [name for name, _ in ranked[:4]]
    t = Table("recall", *top, title="recall per genre (the best heads)", title_justify="left")
    for g in genres:
        t.add_row(g, *[f"{result['heads'][n]['recall'][g]:.2f}" for n in top])
    c.print(t)
    for i, missing in enumerate(result.get("missing_genres") or []):
        if missing:
            c.print(f"fold {i + 1}: no training covers of {', '.join(missing)} (its covers there cannot be recognised)")
    if result.get("fold_seconds"):
        c.print("seconds per fold: " + ", ".join(f"{s:.0f}" for s in result["fold_seconds"] if s is not None))
    for i, weights in enumerate(result.get("blend_weights") or []):
        if weights:
            c.print(f"blend weights, fold {i + 1}: " + ", ".join(f"{n} {w:.2f}" for n, w in weights.items()))
    if best and result.get("by_source"):
        c.print(f"per input, {best} (out-of-fold):")
        for source, r in result["by_source"].items():
            h = r["heads"][best]
            c.print(f"  {source} ({r['covers']} covers): balanced accuracy {h['balanced_accuracy']:.3f}, "
                    f"ECE {h['ece']:.3f}; recall " + ", ".join(f"{g} {v:.2f}" for g, v in h["recall"].items()))
    if best and result.get("unknown_genres"):
        print_unknown_genres(c, result["unknown_genres"], best)
    c.print("confusion matrices (rows: true genre, columns: predicted)")
    for name, m in ranked:
        cm = Table("true \\ pred", *genres, title=name, title_justify="left")
        for g, row in zip(genres, m["confusion_matrix"]):
            cm.add_row(g, *map(str, row))
        c.print(cm)


def _kept(precision_at: dict | None, threshold: str) -> str:
    """``0.62 (41)``: the share right of the rows --min-prob keeps at that threshold, and how many."""
    got = (precision_at or {}).get(threshold)
    if not got:
        return ""
    return "none kept" if got["precision"] is None else f"{got['precision']:.2f} ({got['kept']})"


def print_heldout(c: Console, result: dict, best: str | None) -> None:
    """Covers from a collection the model did not train on: each held-out split, then every head's summary."""
    c.print("[bold]held out[/]: trained without one collection's covers of genres another collection has, tested "
            "on them (what to expect on covers from elsewhere)")
    if best:
        t = Table("split", "covers", "genres", "bal. acc. (in CV)", "ECE", "right at ≥0.5", "right at ≥0.7",
                  "familiarity", title=f"held out, {best}", title_justify="left")
        for name, r in result["heldout"].items():
            h = r["heads"][best]
            fam = (r.get("familiarity") or {}).get("median")
            t.add_row(name, str(r["test_covers"]), ", ".join(r["genres"]),
                      f"{h['balanced_accuracy']:.3f} ({h['in_cv_balanced_accuracy']:.3f})", f"{h['ece']:.3f}",
                      _kept(h["precision_at"], "0.5"), _kept(h["precision_at"], "0.7"),
                      "" if fam is None else f"{fam:.2f}")
        c.print(t)
    summary = result.get("heldout_summary") or {}
    if summary:
        t = Table("head", "held-out bal. acc. (mean)", "worst ECE", "lowest right at ≥0.5", "lowest right at ≥0.7",
                  "in-collection bal. acc.", title="every head, held out", title_justify="left")
        t.columns[0].no_wrap = True
        for name, h in sorted(summary.items(), key=lambda kv: -kv[1]["balanced_accuracy"]):
            low = ["" if v is None else f"{v:.2f}" for v in (h["lowest_precision_at"][k] for k in ("0.5", "0.7"))]
            t.add_row(f"{name} *" if name == best else name, f"{h['balanced_accuracy']:.3f}", f"{h['worst_ece']:.3f}",
                      *low, f"{result['heads'][name]['balanced_accuracy']:.3f}")
        c.print(t)


def print_unknown_genres(c: Console, unknown: dict, head: str) -> None:
    """How sure the model is of covers of a genre it was not trained on (each genre left out in turn)."""
    t = Table("left out", "covers", "≥0.5 raw", "≥0.5 OOF temperature", "≥0.5 calibrated", "≥0.7 calibrated",
              title=f"genres the model does not know, {head}: share of their covers kept with confidence",
              title_justify="left")
    for genre, g in unknown["genres"].items():
        h = g["heads"][head]
        t.add_row(genre, str(g["test_covers"]), f"{h['raw']['0.5']:.2f}", f"{h['out_of_fold_temperature']['0.5']:.2f}",
                  f"{h['calibrated']['0.5']:.2f}", f"{h['calibrated']['0.7']:.2f}")
    m = unknown["mean"][head]
    t.add_row("mean", "", f"{m['raw']['0.5']:.2f}", f"{m['out_of_fold_temperature']['0.5']:.2f}",
              f"{m['calibrated']['0.5']:.2f}", f"{m['calibrated']['0.7']:.2f}")
    c.print(t)


def print_model(model) -> None:
    c = _console()
    m = model.manifest
    c.print(f"[bold]{m['name']}[/] {model.version} ({model.dir}) · genres: {', '.join(model.genres)}")
    if model.aliases:
        by_genre: dict[str, list[str]] = {}
        for alias, genre in model.aliases.items():
            by_genre.setdefault(genre, []).append(alias)
        c.print("--keep also takes (case, spaces, hyphens and underscores never matter): "
                + "; ".join(f"{', '.join(a)} → {g}" for g, a in by_genre.items()))
    _print_expectations(c, model)
    others = [p for p in model.variants if p != model.precision]
    c.print(f"featurizer: {model.variants[model.precision]['id']} ({model.precision}"
            + (f"; also {', '.join(others)} with --precision" if others else "")
            + f") · default head: {model.default_head}")
    _print_training_set(c, m.get("training_set") or {})
    _print_network(c, model)
    if m.get("blend"):
        c.print("blend: " + ", ".join(f"{n} {w:.2f}" for n, w in m["blend"]["weights"].items()))
    if m.get("cv"):
        _print_cv(c, model, m["cv"])
    others = [n for n in _shipped_names() if n != model.dir.name]
    if others:
        c.print(f"other shipped models: {', '.join(others)} (--model NAME)")


def _print_training_set(c: Console, ts: dict) -> None:
    c.print(f"trained on {ts.get('images')} covers ({ts.get('source')}, sha256 {str(ts.get('sha256'))[:12]}…)")
    for source, counts in (ts.get("per_source") or {}).items():
        c.print(f"  {source}: " + ", ".join(f"{g} {n}" for g, n in counts.items()))
    grouping = ts.get("grouping") or {}
    if grouping.get("near_duplicates"):
        nd = grouping["near_duplicates"]
        c.print(f"leak-free groups: {grouping['groups']} ({nd['clusters']} near-duplicate clusters of "
                f"{nd['covers_in_clusters']} covers" + (f", {grouping['artists']['known']} artists"
                                                       if grouping.get("artists") else "") + ")")


def _print_network(c: Console, model) -> None:
    """How the CNN was fine-tuned, and its test-time augmentation."""
    m = model.manifest
    cnn = m["featurizers"]["cnn"]
    if cnn.get("finetuning"):
        r = cnn["finetuning"]["recipe"]
        c.print(f"CNN fine-tuned on these covers: {r['arch']}, {r['epochs']} epochs, "
                f"{r.get('class_weighting', 'none')} genre weights, {r.get('augment', 'basic')} augmentation")
    flip = ((m.get("cv") or {}).get("flip_tta_change") or {}).get(model.default_head)
    if cnn.get("tta") == "flip" or flip is not None:
        c.print(f"test-time augmentation (--tta none|flip): {cnn.get('tta', 'none')} by default")
        if flip is not None:
            c.print(f"  flip under CV: {model.default_head} {flip:+.3f} balanced accuracy, "
                    "for twice the network's time")


def _print_cv(c: Console, model, cv: dict) -> None:
    """The heads' cross-validated figures, with int8's change and each calibration."""
    int8 = model.variants.get("int8", {}).get("cv") or {}
    cal = (model.manifest.get("calibration") or {}).get("heads") or {}
    # short headings: the table must fit an 80-column terminal or log without cutting names
    columns = ["head", "acc.", "bal. acc."] + (["int8 Δ"] if int8 else []) \
        + (["temp.", "slope", "ECE", "ECE cal."] if cal else [])
    inside = ", CNN fine-tuned inside each fold" if cv.get("finetuned_in_each_fold") else ""
    grouped = " grouped" if cv.get("grouped") else ""
    t = Table(*columns, title=f"{cv['folds']}-fold{grouped} CV{inside}", box=box.SIMPLE_HEAD)
    t.columns[0].no_wrap = True
    for name, h in sorted(cv["heads"].items(), key=lambda kv: -kv[1]["balanced_accuracy"]):
        change = [f"{int8[name]['change']:+.3f}"] if name in int8 else ([""] if int8 else [])
        calib = []
        if cal:
            cn = model.calibration(name)
            calib = ([f"{cn.temperature:.2f}", f"{cn.slope:.2f}", f"{cal[name]['ece_before']:.3f}",
                      f"{cal[name]['ece_after']:.3f}"] if name in cal else ["", "", "", ""])
        t.add_row(name, f"{h['accuracy']:.3f}", f"{h['balanced_accuracy']:.3f}", *change, *calib)
    c.print(t)
    best = cv["heads"].get(model.default_head)
    if best and best.get("recall"):
        c.print(f"{model.default_head} recall: " + ", ".join(f"{g} {v:.2f}" for g, v in best["recall"].items()))
    for source, r in (cv.get("by_source") or {}).items():
        h = r["heads"].get(model.default_head)
        if h:
            c.print(f"on {source} covers ({r['covers']}): balanced accuracy {h['balanced_accuracy']:.3f}, "
                    f"ECE {h['ece']:.3f}")


def _print_expectations(c: Console, model) -> None:
    """What to expect of the default head: first on covers from collections the model did not train on, then on
    covers like the training ones; and how to read ``familiarity``."""
    m = model.manifest
    cv = m.get("cv") or {}
    head = model.default_head
    cal = ((m.get("calibration") or {}).get("heads") or {}).get(head) or {}
    # a model trained before held-out collections were measured has its cross-source splits
    splits = cv.get("heldout") or cv.get("cross_source") or {}
    heldout = {n: r["heads"][head] for n, r in splits.items() if head in r["heads"]}
    if heldout:
        accs = [h["balanced_accuracy"] for h in heldout.values()]
        c.print(f"[bold]on covers from collections it did not train on[/] ({head}, {len(heldout)} held-out splits): "
                f"balanced accuracy {sum(accs) / len(accs):.3f} on average ({min(accs):.3f} to {max(accs):.3f}), "
                f"ECE up to {max(h['ece'] for h in heldout.values()):.3f}")
        for name, h in heldout.items():
            kept = ", ".join(f"--min-prob {t} keeps {_share(h['precision_at'][t])}" for t in ("0.5", "0.7")
                             if h.get("precision_at"))
            c.print(f"  {name} ({', '.join(splits[name]['genres'])}): balanced accuracy {h['balanced_accuracy']:.3f} "
                    f"(in CV {h['in_cv_balanced_accuracy']:.3f}), ECE {h['ece']:.3f}" + (f"; {kept}" if kept else ""))
    h = (cv.get("heads") or {}).get(head)
    if h:
        kept = ", ".join(f"--min-prob {t} keeps {_share(h['precision_at'][t])}" for t in ("0.5", "0.7")
                         if h.get("precision_at"))
        c.print(f"[bold]on covers like the training ones[/] (grouped CV: artists and albums it did not see): balanced "
                f"accuracy {h['balanced_accuracy']:.3f}" + (f", ECE {cal['ece_after']:.3f}" if cal else "")
                + (f"; {kept}" if kept else ""))
    fam = m.get("familiarity")
    if fam:
        c.print(f"familiarity (0-1): {fam.get('scale', '')}")


def _share(kept: dict) -> str:
    if kept["precision"] is None:
        return "no cover"
    return f"{kept['share']:.0%} of covers, right {kept['precision']:.0%} of the time"


def _shipped_names() -> list[str]:
    from scorer.model import shipped_models

    try:
        return shipped_models()
    except FileNotFoundError:
        return []


def print_playlist(scored, out: Path | None) -> None:
    """The per-track table (track, artist, top genre, probability, kept), then the run summary; ``scored`` is
    what :func:`scorer.score_playlist` returns."""
    c = _console()
    run = scored.attrs["scorer"]
    info, s = run["playlist"], run["summary"]
    c.print(f"[bold]{info.get('name') or info['id']}[/] by {info.get('owner') or '?'} · {len(scored)} tracks, "
            f"{run['distinct_covers']} distinct covers")
    also = [c[:-len("_label")] for c in scored.columns
            if c.endswith("_label") and f"{c[:-len('_label')]}_prob" in scored.columns]  # --also models
    t = Table("#", "track", "artist", "genre", "prob.", *also, "kept", box=None)
    for _, r in scored.iterrows():
        ok = r.status == "ok"
        genre = r.genre if ok else f"[red]{r.status}[/]"
        prob = f"{r.genre_prob:.2f}" if ok else ""
        labels = [f"{r[f'{a}_label']} {r[f'{a}_prob']:.2f}" if ok else "" for a in also]
        t.add_row(str(r.position + 1), _text(r.title), _text(r.artist), genre, prob, *labels,
                  "[green]yes[/]" if r.kept else "no")
    c.print(t)
    failed = sorted(s["failed"].items(), key=lambda kv: -kv[1])
    c.print(f"{s['scored']} scored · {sum(s['failed'].values())} not scored"
            + (f" ({', '.join(f'{k} {n}' for k, n in failed)})" if failed else "")
            + f" · kept {s['kept_total']}")
    if out is not None:
        c.print(f"wrote {out}")
    saved = run.get("saved")
    if saved:
        url = (saved.get("external_urls") or {}).get("spotify") or saved.get("uri") or saved["id"]
        c.print(f"saved the kept tracks as “{saved.get('name')}”: {url}")


def _text(value) -> str:
    """A cell as text: '' for a missing one (pandas gives NaN or None)."""
    return value if isinstance(value, str) else ""


def print_build(summary, interrupted: str | None = None) -> None:
    """The dataset builder's table: covers per genre, and why release groups were left out."""
    c = _console()
    t = Table("genre", "covers", "new", "no cover", "two genres", "longer tag", "not studio", "artist cap",
              "failed", box=None)
    for genre, g in summary.genres.items():
        short = g.covers < g.wanted
        t.add_row(genre, f"{'[yellow]' if short else ''}{g.covers}/{g.wanted}", str(g.new), str(g.no_cover),
                  str(g.two_genres), str(g.other_tag), str(g.not_studio), str(g.artist_cap),
                  f"[red]{g.failed}[/]" if g.failed else "0")
    c.print(t)
    c.print("left out: tagged with two of these genres · matched only a longer tag (\"indie rock\" for indie) · "
            f"compilations, live albums and other secondary types · past {summary.per_artist} albums of one artist")
    for genre, g in summary.genres.items():
        if g.covers < g.wanted and g.exhausted:
            c.print(f"[yellow]{genre}[/]: MusicBrainz has no more albums tagged {genre!r} with a usable cover "
                    f"({g.matches} matched the search)")
    c.print(f"{summary.searches} MusicBrainz searches, {summary.covers_asked} covers asked for, "
            f"{summary.busy_waits} busy answers waited out, {summary.seconds:.0f}s")
    if interrupted:
        c.print(f"[red]stopped:[/] {interrupted}")
    elif any(g.failed for g in summary.genres.values()):
        c.print("covers that failed for a passing reason are asked for again by the next run of the same command")
    c.print(f"wrote {summary.labels}; next: scorer evaluate {summary.out} --group-by artist_mbid")


def print_cache(report: dict) -> None:
    """``scorer cache info``: a line per part of the cache."""
    c = _console()
    t = Table("part", "files", "on disk", "what", box=None)
    for name, part in report["parts"].items():
        t.add_row(name, str(part["files"]), f"{part['bytes'] / 1e6:.1f} MB", part["what"])
    c.print(f"cache: {report['root']} ({report['bytes'] / 1e6:.1f} MB)")
    c.print(t)
    c.print(f"covers are kept to {report['covers_max_bytes'] / 1e9:g} GB (--cache-max-size, SCORER_CACHE_MAX_SIZE)")
