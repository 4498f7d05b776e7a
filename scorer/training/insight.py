"""``scorer report`` on labelled covers: sight-check grid, cross-validated evaluation with confusion
heatmaps, embedding map and occlusion activation maps, in one HTML page.

Everything that shows a prediction is honest about leakage: the activation maps come from heads
fitted on the training rows of the first CV fold and are drawn for covers of that fold's test rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scorer.decode import IMAGE_SIZE, decode_image
from scorer.errors import InputNotFound, UsageError
from scorer.featurize import ColourFeaturizer, OnnxFeaturizer
from scorer.fetch import FetchOptions
from scorer.insight.page import Page, ReportDir, Section, check_out_dir, esc, filter_bar, table
from scorer.insight.svg import confusion_heatmap, reliability_diagram, scatter
from scorer.model import ENSEMBLE, shipped_featurizer
from scorer.training.dataset import Dataset, Example, load_labelled
from scorer.training.evaluate import FEATURIZER_KINDS, best_head, cross_validate, stratified_folds
from scorer.training.features import extract
from scorer.training.heads import HEAD_KINDS, Fitted, fit_head
from scorer.training.occlusion import occlusion_map, overlay
from scorer.training.project import check_projection, project
from scorer.version import __version__

Log = Callable[[str], None] | None


def parse_heads(text: str | None) -> tuple[str, ...]:
    if not text:
        return HEAD_KINDS
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in HEAD_KINDS]
    if unknown or not kinds:
        raise UsageError(f"--heads {text}: unknown head kind(s) {', '.join(unknown) or '(none)'}; "
                         f"use a comma-separated list of {', '.join(HEAD_KINDS)}")
    return kinds


def load_evaluation(path: Path) -> dict:
    """A ``scorer evaluate --json`` result to show instead of running cross-validation again."""
    try:
        cv = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"--evaluation {path}: not a readable JSON file ({e})") from e
    if not isinstance(cv, dict) or not isinstance(cv.get("heads"), dict) or "genres" not in cv:
        raise UsageError(f"--evaluation {path}: not the output of `scorer evaluate --json`")
    return cv


def labelled_report(data: Path, out: Path, folds: int = 5, seed: int = 0, heads: str | None = None,
                    per_genre: int | None = None, grid: int = 12, activations: int = 6,
                    activation_head: str | None = None, projection: str = "pca", evaluation: Path | None = None,
                    featurizer: Path | None = None, fetch: FetchOptions | None = None, log: Log = None) -> Path:
    """Write the report of a labelled set to ``out``; returns the path of ``index.html``."""
    head_kinds = parse_heads(heads)
    check_projection(projection)
    check_out_dir(out)
    pairs = [f"{f}-{h}" for f in FEATURIZER_KINDS for h in head_kinds]
    if activation_head is not None and activation_head not in (*pairs, ENSEMBLE):
        raise UsageError(f"--activation-head {activation_head}: use one of {', '.join([*pairs, ENSEMBLE])}")
    given_cv = load_evaluation(evaluation) if evaluation else None
    featurizer = Path(featurizer) if featurizer else shipped_featurizer()
    if not featurizer.is_file():
        raise InputNotFound(f"--featurizer {featurizer}: no such ONNX file", str(featurizer))
    dataset = _labelled(data, fetch, per_genre, seed, given_cv, evaluation)
    if log:
        log(f"{len(dataset.examples)} covers in {len(dataset.genres)} genres {dataset.counts()}")
    cnn = OnnxFeaturizer(featurizer)
    featurizers = {"cnn": cnn, "colour": ColourFeaturizer()}
    features = extract(dataset.examples, featurizers)
    y = np.array(dataset.labels)

    with ReportDir(out) as report:
        page = Page(f"Covers report: {Path(data).name}", {
            "input": str(data), "covers": f"{len(dataset.examples)} in {len(dataset.genres)} genres"
            + (f" (at most {per_genre} per genre, seeded sample)" if per_genre else ""),
            "featurizer": cnn.id, "seed": seed, "scorer": __version__})
        if log:
            log("drawing the sight-check grid")
        page.add(Section("sight-check", "Data sight-check", _sight_check(dataset, grid, seed, report)))

        fold0: dict = {}
        cv = given_cv or _cross_validate(dataset, features, y, folds, seed, head_kinds, cnn.id, fold0, log)
        page.add(Section("evaluation", "Evaluation", _evaluation(cv, given=evaluation)))

        if log:
            log(f"projecting the CNN embeddings ({projection})")
        page.add(Section("embedding", "Embedding map",
                         _embedding(dataset, features["cnn"], y, projection, seed, report)))

        if not activations:
            return report.finish(page.render())
        name = activation_head or _best_available(cv, pairs)
        if not fold0:
            train, test = _first_fold(y, folds, seed, dataset.groups)
            members = pairs if name == ENSEMBLE else [name]
            fold0 = dict(train=train, test=test, fitted={
                m: fit_head(m.split("-", 1)[1], m.split("-", 1)[0], features[m.split("-", 1)[0]][train], y[train],
                            len(dataset.genres), seed) for m in members})
        if log:
            log(f"occlusion maps for {name}")
        page.add(Section("activations", "Activation maps",
                         _activations(dataset, features, y, fold0, name, featurizers, activations, seed, report)))
        return report.finish(page.render())


def _labelled(data: Path, fetch: FetchOptions | None, per_genre: int | None, seed: int, given_cv: dict | None,
              evaluation: Path | None) -> Dataset:
    """The labelled set (a seeded sample of ``per_genre`` a genre), checked against a given evaluation."""
    dataset = load_labelled(data, fetch)
    if per_genre:
        dataset = _subsample(dataset, per_genre, seed)
    if len(dataset.genres) < 2:
        raise UsageError(f"{data}: need at least two genres, found {dataset.genres}")
    if given_cv and list(given_cv["genres"]) != dataset.genres:
        raise UsageError(f"--evaluation {evaluation}: its genres {given_cv['genres']} are not this set's "
                         f"{dataset.genres}")
    return dataset


def _cross_validate(dataset: Dataset, features: dict[str, np.ndarray], y: np.ndarray, folds: int, seed: int,
                    head_kinds: tuple[str, ...], cnn_id: str, fold0: dict, log: Log) -> dict:
    """The report's own CV; its first fold's split and heads go into ``fold0`` for the activation maps."""

    def keep_first_fold(i, train, test, fitted):
        if i == 0:
            fold0.update(train=train, test=test, fitted=fitted)

    if log:
        log(f"{folds}-fold cross-validation of {', '.join(f'{f}-{h}' for f in FEATURIZER_KINDS for h in head_kinds)}"
            " and their ensemble")
    try:
        cv = cross_validate(features, y, dataset.genres, folds, seed, heads=head_kinds, log=log,
                            on_fold=keep_first_fold, groups=dataset.groups,
                            sources=[e.source for e in dataset.examples], cross_source=False)
    except ValueError as e:
        raise UsageError.of(e) from e
    cv["featurizers"] = {"cnn": cnn_id, "colour": ColourFeaturizer.id}
    cv["best_head"] = best_head(cv)
    return cv


def _subsample(dataset: Dataset, per_genre: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    keep: list[Example] = []
    for g in dataset.genres:
        members = [e for e in dataset.examples if e.genre == g]
        picked = rng.choice(len(members), size=min(per_genre, len(members)), replace=False)
        keep += [members[i] for i in sorted(picked)]
    return Dataset(keep, dataset.genres, dataset.dropped_duplicates, dataset.dropped_conflicts, dataset.unfetched,
                   skipped=dataset.skipped, skipped_first=dataset.skipped_first)


def _first_fold(y: np.ndarray, folds: int, seed: int, groups: list[str] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    test = stratified_folds(y, folds, seed, groups)[0]
    return np.setdiff1d(np.arange(len(y)), test), test


def _best_available(cv: dict, pairs: list[str]) -> str:
    """The best pair by CV among those this run can fit (an ``--evaluation`` may list others)."""
    ranked = sorted(cv["heads"], key=lambda n: -cv["heads"][n]["balanced_accuracy"])
    return next((n for n in ranked if n in (*pairs, ENSEMBLE)), pairs[0])


def _cover(example: Example, size: int) -> np.ndarray:
    return decode_image(Path(example.path).read_bytes(), size=size)


def _sight_check(dataset: Dataset, grid: int, seed: int, report: ReportDir) -> str:
    rng = np.random.default_rng(seed)
    counts = dataset.counts()
    rows = []
    for gi, g in enumerate(dataset.genres):
        members = [e for e in dataset.examples if e.genre == g]
        picked = sorted(rng.choice(len(members), size=min(grid, len(members)), replace=False))
        tiles = []
        for k in picked:
            e = members[k]
            src = report.save_image(f"grid-{gi}-{k}", _cover(e, 138))
            tiles.append(f'<div class="tile" title="{esc(e.path)}">'
                         f'<img src="{src}" alt="{esc(g)} cover"><div class="s">{esc(Path(e.path).name)}</div></div>')
        rows.append(f'<div class="genre-row" data-genre="{esc(g)}"><h3>{esc(g)} '
                    f'<small>({counts[g]} covers, {len(picked)} shown)</small></h3>'
                    f'<div class="grid">{"".join(tiles)}</div></div>')
    note = (f'<p class="note">{min(grid, max(counts.values()))} covers per genre drawn at random (seed {seed}). '
            'Look for covers filed under the wrong genre, duplicates, placeholders and non-covers.</p>')
    return note + filter_bar("sight-grid", dataset.genres) + f'<div id="sight-grid">{"".join(rows)}</div>'


def _evaluation(cv: dict, given: Path | None) -> str:
    genres = cv["genres"]
    ranked = sorted(cv["heads"].items(), key=lambda kv: -kv[1]["balanced_accuracy"])
    source = (f"from <code>{esc(given)}</code>" if given else "computed for this report")
    grouped = (" grouped so that near-duplicate covers (and, with <code>--group-by</code>, an artist's albums) "
               "never sit on both sides of a fold," if cv.get("grouped") else "")
    note = (f'<p class="note">{cv["folds"]}-fold stratified cross-validation (seed {cv["seed"]}) on '
            f'{cv["images"]} covers,{grouped} {source}. Every figure is out-of-fold: each cover is scored by '
            f'heads that never saw it. <code>ensemble</code> averages every pair\'s probabilities. Chance level is '
            f'{1 / len(genres):.3f} balanced accuracy.</p>')
    rows = []
    for name, m in ranked:
        per_fold = m.get("balanced_accuracy_per_fold") or []
        spread = f"{min(per_fold):.3f}–{max(per_fold):.3f}" if per_fold else ""
        rows.append([esc(name) + (" ★" if name == cv.get("best_head") else ""), f"{m['accuracy']:.3f}",
                     f"<b>{m['balanced_accuracy']:.3f}</b>", spread])
    summary = table(["featurizer-head", "accuracy", "balanced accuracy", "per fold (min–max)"], rows)
    per_genre = table(
        ["featurizer-head", *[f"{esc(g)} recall / precision" for g in genres]],
        [[esc(name), *[f"{m['recall'][g]:.2f} / {m['precision'][g]:.2f}" if "precision" in m
                       else f"{m['recall'][g]:.2f} / –" for g in genres]] for name, m in ranked])
    maps = "".join(f'<figure>{confusion_heatmap(m["confusion_matrix"], genres, name)}</figure>'
                   for name, m in ranked if "confusion_matrix" in m)
    return (note + summary + "<h3>Per genre</h3>" + per_genre + _calibration(cv)
            + "<h3>Confusion matrices</h3><p class=\"note\">Rows: true genre, normalised per true genre (each row "
            "sums to 100%); columns: predicted genre. The diagonal is each genre's recall.</p>"
            + f'<div class="heatmaps">{maps}</div>')


def _calibration(cv: dict) -> str:
    """Each head's temperature and ECE, and the reliability diagram of the best head, before and after."""
    heads = (cv.get("calibration") or {}).get("heads")
    if not heads:
        return ""
    ranked = sorted(heads, key=lambda n: -cv["heads"][n]["balanced_accuracy"])
    rows = [[esc(n), f"{heads[n]['temperature']:.2f}" + ("" if heads[n]["used"] else " (not used)"),
             f"{heads[n]['ece_before']:.3f}", f"<b>{heads[n]['ece_after']:.3f}</b>",
             f"{heads[n]['log_loss_before']:.3f} → {heads[n]['log_loss_after']:.3f}"] for n in ranked]
    best = cv.get("best_head") or ranked[0]
    curves = {"out of fold, before": heads[best]["reliability_before"],
              "out of fold, calibrated": heads[best]["reliability_after"]}
    if heads[best].get("heldout"):
        curves |= {"held out, before": heads[best]["heldout"]["reliability_before"],
                   "held out, calibrated": heads[best]["heldout"]["reliability_after"]}
    diagram = reliability_diagram(curves, f"{best}: reliability")
    return ("<h3>Calibration</h3><p class=\"note\">Do the probabilities mean what they say? Expected calibration "
            f"error (ECE, {heads[best]['reliability_before']['bins']} bins) is the covers-weighted gap between the top "
            "genre's probability and how often it is right. Temperature scaling divides each head's log-probabilities "
            "by a number fitted on out-of-fold predictions and, with several collections, on predictions for "
            "collections held out of training; the number grows as a cover's familiarity falls. The <i>after</i> "
            "figures apply, to each fold or held-out split, a calibration fitted without its covers. It never changes "
            "the top genre.</p>"
            + table(["featurizer-head", "temperature", "ECE before", "ECE after", "log loss"], rows)
            + f'<figure>{diagram}</figure>')


def _embedding(dataset: Dataset, x: np.ndarray, y: np.ndarray, method: str, seed: int, report: ReportDir,
               thumbs_per_genre: int = 20) -> str:
    points, how = project(x, method, seed)
    rng = np.random.default_rng(seed)
    thumbs = {}
    for gi in range(len(dataset.genres)):
        members = np.flatnonzero(y == gi)
        for i in sorted(rng.choice(members, size=min(thumbs_per_genre, len(members)), replace=False)):
            thumbs[int(i)] = report.save_image(f"map-{i}", _cover(dataset.examples[i], 56), quality=80)
    titles = [f"{e.genre}: {Path(e.path).name}" for e in dataset.examples]
    svg = scatter(points, y, dataset.genres, titles, thumbs, axes=("first axis", "second axis"))
    toggle = ('<label class="sel"><input type="checkbox" data-toggle-class="covers" data-target="embedding-map"> '
              f'show covers ({len(thumbs)})</label>')
    note = (f'<p class="note">Each point is one cover\'s CNN embedding ({x.shape[1]} numbers), projected to 2-D by '
            f'{esc(how)}. Genres that the CNN separates form their own regions; points deep inside another '
            f'genre\'s region are covers the heads will find hard (or mislabelled ones). Hover a point for its file.'
            f'</p>')
    bar = filter_bar("embedding-map", dataset.genres, toggle)
    return note + bar + f'<div class="map" id="embedding-map">{svg}</div>'


def _predictor(name: str, fitted: dict[str, Fitted], featurizers: dict) -> tuple[Callable, list[str]]:
    members = list(fitted) if name == ENSEMBLE else [name]
    kinds = sorted({fitted[m].featurizer for m in members})

    def predict(images: np.ndarray) -> np.ndarray:
        feats = {k: featurizers[k](images) for k in kinds}
        return np.mean([fitted[m].predict_proba(feats[fitted[m].featurizer]) for m in members], axis=0)

    return predict, members


def _activations(dataset: Dataset, features: dict[str, np.ndarray], y: np.ndarray, fold0: dict, name: str,
                 featurizers: dict, per_group: int, seed: int, report: ReportDir) -> str:
    predict, members = _predictor(name, fold0["fitted"], featurizers)
    test = fold0["test"]
    probs = np.mean([fold0["fitted"][m].predict_proba(features[fold0["fitted"][m].featurizer][test])
                     for m in members], axis=0)
    pred = probs.argmax(axis=1)
    rng = np.random.default_rng(seed)
    groups = {"correct": test[pred == y[test]], "wrong": test[pred != y[test]]}
    predicted = dict(zip(test.tolist(), pred.tolist()))
    genres = dataset.genres
    body = [f'<p class="note">Occlusion sensitivity for <b>{esc(name)}</b>: a grey 48-pixel patch slides over the '
            f'224×224 cover in 16-pixel steps, and each pixel is coloured by how much hiding it lowers the '
            f'predicted genre\'s probability (brighter: the prediction leans on it more; each map is scaled to its '
            f'own largest drop). The heads were fitted on the training rows of fold 1 of the '
            f'cross-validation; every cover here is from that fold\'s held-out rows ({len(test)} covers, '
            f'{len(groups["correct"])} predicted correctly).</p>']
    for group, rows in groups.items():
        chosen = _spread(rows, y, per_group, rng)
        cards = []
        for i in chosen:
            image = _cover(dataset.examples[i], IMAGE_SIZE)
            target = predicted[int(i)]
            heat, base = occlusion_map(image, predict, target)
            drop = float(heat.max())
            src = report.save_image(f"act-{i}-cover", image)
            ovl = report.save_image(f"act-{i}-map", overlay(image, heat))
            true_g, pred_g = genres[y[i]], genres[target]
            cards.append(f'<div class="pair {group}" data-genre="{esc(true_g)}"><div class="imgs">'
                         f'<img src="{src}" alt="cover"><img src="{ovl}" alt="occlusion map"></div>'
                         f'<div>true <b>{esc(true_g)}</b> · predicted <b>{esc(pred_g)}</b> ({base:.2f})</div>'
                         f'<div class="s">largest drop {drop:.2f} · {esc(Path(dataset.examples[i].path).name)}</div>'
                         f'</div>')
        body.append(f"<h3>{'Correct' if group == 'correct' else 'Wrong'} predictions ({len(chosen)})</h3>"
                    + (f'<div class="pairs">{"".join(cards)}</div>' if cards else '<p class="note">none</p>'))
    return "".join(body)


def _spread(rows: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    """Up to ``n`` rows, taken round-robin over true genres so that no genre crowds out the others."""
    by_genre = [list(rng.permutation(rows[y[rows] == g])) for g in np.unique(y[rows])] if len(rows) else []
    out: list[int] = []
    while len(out) < n and any(by_genre):
        for members in by_genre:
            if members and len(out) < n:
                out.append(int(members.pop()))
    return out
