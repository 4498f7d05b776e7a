"""``scorer evaluate`` and ``scorer train``: labelled covers → CV figures → a model directory."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from scorer.featurize import ColourFeaturizer, FlipAveraged, OnnxFeaturizer
from scorer.fetch import FetchOptions, default_cache_root
from scorer.training.dataset import SKIP_REASONS, Dataset, load_labelled
from scorer.training.evaluate import Fold, best_head, cross_validate, head_pairs, stratified_folds
from scorer.training.features import extract
from scorer.training.heads import HEAD_KINDS, Fitted
from scorer.training.model_dir import write_model
from scorer.training.networks import DEFAULT, Network, resolve_network
from scorer.training.quantize import int8_path

Log = Callable[[str], None] | None
#: int8 becomes a model's default precision only if no head loses more balanced accuracy than this
INT8_TOLERANCE = 0.01
#: share of each fold's training covers held back from fine-tuning to choose the blend's weights
BLEND_SHARE = 0.1
#: covers that calibrate a fine-tuned network's int8 activations, and others that check it
CALIBRATION, CHECK = 300, 16


def int8_beside(fp32: Path) -> Path | None:
    """``x-int8.onnx`` next to ``x.onnx`` (what ``scorer.training.quantize`` writes), if there is one."""
    path = int8_path(fp32)
    return path if path.is_file() else None


Data = Path | list[Path]


def load(data: Data, log: Log, fetch: FetchOptions | None = None, group_by: str | None = None,
         folds: int = 0) -> Dataset:
    """The labelled covers of one or several inputs, checked (two genres, ``folds`` covers of each at least:
    :func:`scorer.training.dataset.check_genres`), grouped for leak-free folds, logged."""
    dataset = load_labelled(data, fetch, group_by, folds=folds)
    if log:
        log(f"{len(dataset.examples)} covers in {len(dataset.genres)} genres {dataset.counts()}; "
            f"dropped {dataset.dropped_duplicates} duplicate(s), {dataset.dropped_conflicts} cover(s) filed "
            f"under several genres")
        if dataset.skipped:
            log(f"left out {skipped_line(dataset)}")
        if len(dataset.sources) > 1:
            log("per input: " + "; ".join(f"{s} {c}" for s, c in dataset.counts_by_source().items()))
        nd = dataset.grouping.get("near_duplicates")
        if nd:
            log(f"near-duplicates: {nd['pairs']} pairs in {nd['clusters']} clusters ({nd['covers_in_clusters']} "
                f"covers; {nd['clusters_spanning_genres']} clusters span genres, {nd['clusters_spanning_sources']} "
                f"span inputs); {dataset.grouping['groups']} groups for the folds")
        if dataset.grouping.get("inputs_without_column"):
            log(f"--group-by {group_by}: no such column in {', '.join(dataset.grouping['inputs_without_column'])}; "
                f"its covers are grouped by near-duplicates only")
        if dataset.unfetched:
            log(f"left out {sum(dataset.unfetched.values())} cover(s) that could not be fetched: "
                f"{dict(dataset.unfetched)}")
    return dataset


def skipped_line(dataset: Dataset) -> str:
    """``3 row(s) or file(s) (2 file not found, 1 not an image); first: labels.csv line 4: ...``"""
    reasons = ", ".join(f"{n} {SKIP_REASONS[r]}" for r, n in dataset.skipped.most_common())
    return (f"{sum(dataset.skipped.values())} row(s) or file(s) ({reasons}); first: "
            + "; ".join(dataset.skipped_first))


def _names(data: Data) -> str:
    return ", ".join(str(d) for d in (data if isinstance(data, (list, tuple)) else [data]))


def _featurize(dataset: Dataset, network: Network, log: Log, variants: bool = True, colour: bool = True
               ) -> tuple[dict[str, np.ndarray], OnnxFeaturizer, dict[str, OnnxFeaturizer]]:
    """Features of every labelled cover, plus (with ``variants``: only CV scores them) the cnn features of each
    other precision shipped beside the network (under ``features["cnn:int8"]``). A network whose models score
    at a fixed precision (the shipped genre model's: fp32, as that model does) has its other precision shipped
    beside it but not measured."""
    cnn = OnnxFeaturizer(network.path)
    int8 = int8_beside(network.path)
    others = {"int8": OnnxFeaturizer(int8)} if int8 else {}
    measured = variants and network.default_precision is None
    if log:
        log(f"network: {network.description} ({cnn.id})")
    features = extract(dataset.examples, {"cnn": cnn, **({"colour": ColourFeaturizer()} if colour else {}),
                                          **{f"cnn:{k}": f for k, f in others.items() if measured}})
    return features, cnn, others


def _cross_validate(features: dict[str, np.ndarray], dataset: Dataset, folds: int, seed: int, log: Log,
                    unknown_genres: bool = False, heads: tuple[str, ...] = HEAD_KINDS) -> dict:
    """CV of the fp32 heads, which also score each other precision's features of the test folds."""
    base = {k: v for k, v in features.items() if ":" not in k}
    variants = {k.split(":")[1]: {"cnn": v} for k, v in features.items() if k.startswith("cnn:")}
    cv = cross_validate(base, np.array(dataset.labels), dataset.genres, folds, seed, heads, log=log, variants=variants,
                        groups=dataset.groups, sources=[e.source for e in dataset.examples],
                        collections=[e.collection for e in dataset.examples], unknown_genres=unknown_genres)
    return _with_changes(cv)


def _with_changes(cv: dict) -> dict:
    """Each variant's balanced-accuracy change per head, against the plain features."""
    for v in cv.get("variants", {}).values():
        v["balanced_accuracy_change"] = {n: round(m["balanced_accuracy"] - cv["heads"][n]["balanced_accuracy"], 4)
                                         for n, m in v["heads"].items()}
    return cv


def choose_precision(cv: dict | None) -> str:
    """int8 when no head's balanced accuracy drops by more than :data:`INT8_TOLERANCE` with it, in CV and (where
    measured) on average over the held-out collections."""
    change = ((cv or {}).get("variants") or {}).get("int8", {}).get("balanced_accuracy_change")
    held = [h["variants_change"]["int8"] for h in ((cv or {}).get("heldout_summary") or {}).values()
            if "int8" in h.get("variants_change", {})]
    return "int8" if change and min([*change.values(), *held]) >= -INT8_TOLERANCE else "fp32"


def evaluate_dataset(data: Data, folds: int = 5, seed: int = 0, featurizer: Path | str | None = None,
                     log: Log = None, fetch: FetchOptions | None = None, group_by: str | None = None,
                     unknown_genres: bool = False, heads: tuple[str, ...] = HEAD_KINDS) -> dict:
    """``scorer evaluate`` without ``--finetune``: grouped CV of ``heads`` (kinds or featurizer-kind pairs,
    :func:`scorer.training.evaluate.head_pairs`) on ``featurizer``'s features (by default the shipped genre
    model's network, :func:`scorer.training.networks.resolve_network`) and the colour histogram."""
    network = resolve_network(featurizer)
    dataset = load(data, log, fetch, group_by, folds)
    features, cnn, others = _featurize(dataset, network, log, colour=_uses_colour(heads))
    cv = _cross_validate(features, dataset, folds, seed, log, unknown_genres, heads)
    cv["featurizers"] = {"cnn": cnn.id, "colour": ColourFeaturizer.id, **{f"cnn:{k}": f.id for k, f in others.items()}}
    cv["network"] = {"name": network.name, "id": cnn.id, "description": network.description}
    cv["best_head"] = best_head(cv)
    cv["dataset"] = _dataset_summary(data, dataset, group_by)
    return cv


def _uses_colour(heads: tuple[str, ...]) -> bool:
    return bool(head_pairs(heads, ["colour"]))


def _dataset_summary(data: Data, dataset: Dataset, group_by: str | None) -> dict:
    return {"source": _names(data), "images": len(dataset.examples), "sha256": dataset.fingerprint(),
            "per_genre": dataset.counts(), "per_source": dataset.counts_by_source(),
            "unfetched": dict(dataset.unfetched), "skipped": dict(dataset.skipped),
            "skipped_first": dataset.skipped_first, "grouping": dataset.grouping,
            **({"group_by": group_by} if group_by else {}), "groups": dataset.grouping.get("groups")}


def train_dataset(data: Data, out: Path, folds: int = 5, seed: int = 0, name: str = "custom",
                  featurizer: Path | str | None = None, log: Log = None, copy_featurizer: bool = True,
                  fetch: FetchOptions | None = None, extra_heads: dict[str, Fitted] | None = None,
                  default_head: str | None = None, group_by: str | None = None,
                  timings: dict[str, float] | None = None, heads: tuple[str, ...] = HEAD_KINDS) -> dict:
    """Fit every head on all covers and write ``out`` atomically (built beside it, then renamed).

    ``featurizer``: the network the heads are fitted on (:func:`scorer.training.networks.resolve_network`; by
    default the shipped genre model's). ``copy_featurizer=False`` references it by a path relative to ``out``
    instead of copying it in (the shipped default shares ``models/featurizer/``). ``extra_heads`` are shipped as
    they are (a fine-tuned network's own genre layer). ``timings`` gets each stage's seconds: ``reading`` (and
    grouping), ``features``, ``cv`` (the folds), ``calibration`` (pooled figures and calibration), ``final_fit``,
    ``writing``; they are logged too. ``heads``: the heads fitted (as for :func:`evaluate_dataset`).
    """
    network = resolve_network(featurizer)
    stages: dict[str, float] = {} if timings is None else timings
    t0 = time.perf_counter()
    dataset = load(data, log, fetch, group_by, folds)
    t1 = time.perf_counter()
    features, cnn, others = _featurize(dataset, network, log, variants=bool(folds), colour=_uses_colour(heads))
    t2 = time.perf_counter()
    cv = _cross_validate(features, dataset, folds, seed, log, heads=heads) if folds else None
    t3 = time.perf_counter()
    folds_seconds = sum(s or 0 for s in (cv or {}).get("fold_seconds", []))
    stages.update(reading=round(t1 - t0, 1), features=round(t2 - t1, 1), cv=round(folds_seconds, 1),
                  calibration=round(t3 - t2 - folds_seconds, 1))
    precision = network.default_precision or (choose_precision(cv) if others else "fp32")
    about = {"name": network.name, "id": cnn.id, "description": network.description}
    entry: dict = {"network": about, "default_precision": precision}
    if network.name == DEFAULT and "finetuning" in cnn.meta:
        # fine-tuned on the genre model's covers: its record goes under "network", for the manifest's own
        # "finetuning" says the network was fine-tuned on this model's covers (``scorer info`` prints it so)
        entry |= {"network": {**about, "finetuning": cnn.meta["finetuning"]}, "finetuning": None}
    if cv is not None:
        cv["network"] = about
    manifest = write_model(Path(out), dataset, features, cv, name=name, seed=seed, cnn=cnn, others=others,
                           cnn_entry=entry, copy_featurizer=copy_featurizer, extra_heads=extra_heads,
                           default_head=default_head, log=log, timings=stages, heads=heads)
    if log:
        log("seconds: " + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in stages.items())
            + f"; {sum(stages.values()):.1f} in all")
    return manifest


# ------------------------------------------------------------------------------------------ fine-tuning


def _finetune(examples: list, genres: list[str], recipe, out_dir: Path, log: Log, quantize: bool = True,
              keep_checkpoints: bool = False, views=None) -> tuple[OnnxFeaturizer, OnnxFeaturizer | None, Fitted]:
    """Fine-tune on ``examples`` (resuming from the checkpoint in the cache), export to ``out_dir``:
    the fine-tuned featurizer, its int8 quantization (calibrated on these covers' pixels; with
    ``quantize``), and the network's own genre layer as a head."""
    from scorer.heads import LinearHead
    from scorer.training.finetune import data_fingerprint, export_finetuned, finetune, genre_layer
    from scorer.training.quantize import load_batch, quantize_beside

    key = hashlib.sha256((data_fingerprint(examples, genres) + json.dumps(asdict(recipe))).encode()).hexdigest()
    work_dir = default_cache_root() / "finetune" / key[:16]
    ft = finetune(examples, genres, recipe, work_dir=work_dir, log=log, views=views)
    order = np.random.default_rng(recipe.seed).permutation(len(examples))
    covers = [Path(examples[i].path) for i in order[:CALIBRATION + CHECK]]
    n_check = min(CHECK, max(1, len(covers) // 4))
    check, calibration = load_batch(covers[-n_check:]), covers[:-n_check]
    path = export_finetuned(ft, out_dir, check[:8], training_set={
        "images": len(examples), "sha256": data_fingerprint(examples, genres)})
    if not keep_checkpoints:  # the network is exported: its checkpoint (tens of MB) only served a resume
        shutil.rmtree(work_dir, ignore_errors=True)
    int8 = None
    if quantize:
        if log:
            log(f"quantizing to int8 (calibrated on {len(calibration)} of the covers)")
        int8 = OnnxFeaturizer(quantize_beside(path, load_batch(calibration), check, "fine-tuning covers"))
    w, b = genre_layer(ft)
    network = Fitted("network", "cnn", LinearHead("cnn-network", "cnn", w, b),
                     params={"source": "the fine-tuned network's genre layer"})
    return OnnxFeaturizer(path), int8, network


#: bump when what a saved CV split holds changes: older saved splits are then not reused
CV_FORMAT = 3


def _resume_dir(dataset: Dataset, recipe, folds: int, seed: int, blend_share: float) -> Path:
    """Where a fine-tuning CV keeps its finished splits: one folder per data, grouping and recipe."""

    def digest(values) -> str:
        return hashlib.sha256("\n".join(values).encode()).hexdigest()

    key = json.dumps({"data": dataset.fingerprint(), "groups": digest(dataset.groups or []),
                      "sources": digest(e.source for e in dataset.examples),
                      "collections": digest(e.collection for e in dataset.examples), "recipe": asdict(recipe),
                      "folds": folds, "seed": seed, "blend_share": blend_share, "format": CV_FORMAT}, sort_keys=True)
    return default_cache_root() / "cv" / hashlib.sha256(key.encode()).hexdigest()[:16]


def evaluate_finetuned(data: Data, recipe, folds: int = 5, seed: int = 0, log: Log = None,
                       fetch: FetchOptions | None = None, blend_share: float = BLEND_SHARE,
                       group_by: str | None = None, cross_source: bool = True,
                       only: set[str] | None = None, keep_checkpoints: bool = False,
                       unknown_genres: bool = False) -> dict:
    """Cross-validation that fine-tunes inside each fold: the network, and the heads fitted on its
    features, only ever see that fold's training rows. With several inputs, the cross-source
    splits (:func:`scorer.training.evaluate.cross_source_splits`) fine-tune a network each too.

    ``blend_share`` of each fold's training rows (stratified, seeded) is held back from the network
    and the heads, to choose the weights of their ``blend``; 0 turns the blend off. Each finished
    split is kept in the cache folder (``cv/``): a rerun of the same command resumes after it.
    ``only`` runs just the named splits (``fold1``, ``cross:A→B``) and reports each alone.
    """
    dataset = load(data, log, fetch, group_by, folds)
    y = np.array(dataset.labels)
    groups = dataset.groups
    colour = extract(dataset.examples, {"colour": ColourFeaturizer()})["colour"]
    featurizer_ids: dict[str, str] = {}
    resume = _resume_dir(dataset, recipe, folds, seed, blend_share)
    with tempfile.TemporaryDirectory(prefix="scorer-finetune-") as tmp, _views(dataset, recipe, log) as views:

        def fold_features(split, train, test):
            fit = _held_back(train, y, blend_share, seed + sum(map(ord, split.name)), groups)
            if log:
                log(f"{split.name}: fine-tuning on {len(fit)} covers "
                    f"({len(train) - len(fit)} held back to choose the blend)")
            cnn, int8, network = _finetune([dataset.examples[j] for j in fit], dataset.genres, recipe,
                                           Path(tmp) / split.name.replace("→", "-").replace(":", "-").replace("/", "_"),
                                           log, quantize=not split.is_unknown_genre, keep_checkpoints=keep_checkpoints,
                                           views=views)
            featurizer_ids[split.name] = cnn.id
            x = extract(dataset.examples, {"cnn": cnn}, label=f"featurizing ({split.name})")["cnn"]
            variants = {}
            if not split.is_unknown_genre:
                # flip TTA and int8, measured on the test rows only: the heads fitted on plain fp32
                # features score them, as they would at run time
                test_examples = [dataset.examples[j] for j in test]
                for name, featurizer in (("flip", FlipAveraged(cnn)), ("int8", int8)):
                    variants[name] = {"cnn": x.copy()}
                    variants[name]["cnn"][test] = extract(test_examples, {"cnn": featurizer},
                                                          label=f"featurizing, {name} ({split.name})")["cnn"]
            return Fold({"cnn": x, "colour": colour}, {"cnn-network": network}, fit_rows=fit, variants=variants)

        cv = cross_validate({}, y, dataset.genres, folds, seed, log=log, fold_features=fold_features, groups=groups,
                            sources=[e.source for e in dataset.examples], cross_source=cross_source,
                            resume_dir=resume, only=only, collections=[e.collection for e in dataset.examples],
                            unknown_genres=unknown_genres)
    if only is None:
        cv = _with_changes(cv)
        cv["best_head"] = best_head(cv)
    cv["featurizers"] = {"cnn": featurizer_ids, "colour": ColourFeaturizer.id}
    cv["finetuning"] = asdict(recipe)
    cv["blend_share"] = blend_share
    cv["dataset"] = _dataset_summary(data, dataset, group_by)
    return cv


def _views(dataset: Dataset, recipe, log: Log):
    """One :class:`scorer.training.trunk.TrunkViews` for every split's fine-tuning when the recipe freezes blocks."""
    from contextlib import nullcontext

    from scorer.training.trunk import TrunkViews

    if not recipe.freeze_blocks:
        return nullcontext()
    return TrunkViews(dataset.examples, recipe.arch, recipe.freeze_blocks, recipe.seed, recipe.min_crop_area,
                      recipe.augment == "store", log, size=recipe.size)


def _held_back(train: np.ndarray, y: np.ndarray, share: float, seed: int,
               groups: list[str] | None = None) -> np.ndarray:
    """The training rows left to fit on after holding back ``share`` of them, stratified by genre
    (and whole groups, with ``groups``). Small sets hold back more: one cover per genre at least.
    A genre whose training covers would all be held back keeps them: the network must see it."""
    counts = np.bincount(y[train])
    splits = min(max(2, round(1 / share)), int(counts[counts > 0].min())) if share > 0 else 0
    if splits < 2:
        return train
    sub_groups = None if groups is None else [groups[i] for i in train]
    held = stratified_folds(y[train], splits, seed, sub_groups)[0]
    keep = np.ones(len(train), dtype=bool)
    keep[held] = False
    for g in np.unique(y[train]):
        if not keep[y[train] == g].any():
            keep[y[train] == g] = True
    return np.sort(train[keep])


def train_finetuned(data: Data, out: Path, recipe, name: str = "custom", log: Log = None,
                    fetch: FetchOptions | None = None, group_by: str | None = None,
                    keep_checkpoints: bool = False) -> dict:
    """Fine-tune on every labelled cover, then train the heads on the fine-tuned features.

    No CV here: the network has seen every cover, so CV of the heads on its features would be
    optimistic. ``scorer evaluate --finetune`` gives the honest figures; the default head is the
    network's own genre layer.
    """
    dataset = load(data, log, fetch, group_by)
    with tempfile.TemporaryDirectory(prefix="scorer-finetune-") as tmp:
        cnn, _, network = _finetune(dataset.examples, dataset.genres, recipe, Path(tmp), log,
                                    keep_checkpoints=keep_checkpoints)
        return train_dataset(data, out, folds=0, seed=recipe.seed, name=name, featurizer=cnn.path, log=log,
                             fetch=fetch, extra_heads={"cnn-network": network}, default_head="cnn-network",
                             group_by=group_by)
