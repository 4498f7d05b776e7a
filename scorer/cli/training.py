"""``scorer evaluate``, ``scorer train`` and ``scorer report`` (the ``train`` extra for labelled covers)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from scorer.cli.options import (
    AllowPrivateOpt,
    ArchOpt,
    AugmentOpt,
    ConcurrencyOpt,
    DataArg,
    EpochsOpt,
    FeaturizerOpt,
    FinetuneOpt,
    FreezeOpt,
    GroupByOpt,
    KeepCheckpointsOpt,
    PerHostOpt,
    RetriesOpt,
    TimeoutOpt,
    TrainSizeOpt,
    UnknownGenresOpt,
    WeightingOpt,
    fail,
    quiet_notes,
)

#: ``scorer evaluate`` / ``train``: the network the heads are fitted on (``scorer.training.networks``)
NetworkOpt = Annotated[Optional[str], typer.Option(
    "--featurizer", help="Network the heads are fitted on: 'default' (the shipped genre model's network: a model "
                         "trained on it scores beside the genre model in one network run), 'imagenet' (the frozen "
                         "ImageNet EfficientNet-Lite0), or an ONNX file (default: 'default').")]
#: ``scorer evaluate`` / ``train`` without --finetune: the heads fitted
HeadsOpt = Annotated[Optional[str], typer.Option(
    "--heads", help="Heads to fit, comma-separated featurizer-kind pairs (cnn-knn, cnn-xgboost, cnn-mlp, cnn-logreg, "
                    "colour-knn, colour-xgboost, colour-mlp, colour-logreg) or 'all' (default: the four cnn- "
                    "heads). Not with --finetune.")]


def evaluate(
    data: DataArg,
    folds: Annotated[int, typer.Option(help="Number of stratified folds.", min=2, max=20)] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the fold split and the heads.")] = 0,
    featurizer: NetworkOpt = None,
    finetune: FinetuneOpt = False,
    epochs: EpochsOpt = 6,  # the shipped recipe (scorer.training.finetune.Recipe)
    arch: ArchOpt = "lite0",
    freeze_blocks: FreezeOpt = 0,
    augment: AugmentOpt = "store",
    class_weighting: WeightingOpt = "balanced",
    train_size: TrainSizeOpt = 160,  # api.TRAIN_SIZE
    group_by: GroupByOpt = None,
    unknown_genres: UnknownGenresOpt = False,
    keep_checkpoints: KeepCheckpointsOpt = False,
    heads: HeadsOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    concurrency: ConcurrencyOpt = 64,
    per_host: PerHostOpt = 16,
    timeout: TimeoutOpt = 60.0,
    retries: RetriesOpt = 3,
    allow_private_hosts: AllowPrivateOpt = False,
) -> None:
    """Cross-validate every featurizer+head pair (and their ensemble) on labelled covers.

    With --finetune, the CNN is fine-tuned inside each fold, on that fold's training covers only.
    """
    from scorer import api
    from scorer.errors import UsageError

    quiet = quiet_notes() if json_out and not finetune else contextlib.nullcontext()
    try:
        with quiet:
            result = api.evaluate(data, folds=folds, seed=seed, featurizer=featurizer, finetune=finetune,
                                  epochs=epochs, arch=arch, freeze_blocks=freeze_blocks, augment=augment,
                                  class_weighting=class_weighting, train_size=train_size, group_by=group_by,
                                  unknown_genres=unknown_genres, keep_checkpoints=keep_checkpoints, heads=heads,
                                  concurrency=concurrency, per_host=per_host, timeout=timeout, retries=retries,
                                  allow_private_hosts=allow_private_hosts)
    except UsageError as e:
        fail(e.cli_message)
    if json_out:
        typer.echo(json.dumps(result))
    else:
        from scorer.cli.console import print_evaluation

        print_evaluation(result)


def train(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to create.")],
    folds: Annotated[int, typer.Option(help="CV folds used to pick the default head (0: skip, use the ensemble).",
                                       min=0, max=20)] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the folds and the heads.")] = 0,
    name: Annotated[str, typer.Option(help="Model name recorded in the manifest.")] = "custom",
    featurizer: NetworkOpt = None,
    finetune: FinetuneOpt = False,
    epochs: EpochsOpt = 6,  # the shipped recipe (scorer.training.finetune.Recipe)
    arch: ArchOpt = "lite0",
    freeze_blocks: FreezeOpt = 0,
    augment: AugmentOpt = "store",
    class_weighting: WeightingOpt = "balanced",
    train_size: TrainSizeOpt = 160,  # api.TRAIN_SIZE
    group_by: GroupByOpt = None,
    keep_checkpoints: KeepCheckpointsOpt = False,
    heads: HeadsOpt = None,
    concurrency: ConcurrencyOpt = 64,
    per_host: PerHostOpt = 16,
    timeout: TimeoutOpt = 60.0,
    retries: RetriesOpt = 3,
    allow_private_hosts: AllowPrivateOpt = False,
) -> None:
    """Train kNN, XGBoost, MLP and logistic-regression heads on labelled covers and write a model directory.

    The heads are fitted on the shipped genre model's network (frozen) unless --featurizer says otherwise.

    With --finetune, the CNN is fine-tuned on the covers first, exported to ONNX into the model,
    and its own genre layer ships as the default head, `cnn-network`.
    """
    from scorer import api
    from scorer.errors import UsageError

    try:
        manifest = api.train(data, out, folds=folds, seed=seed, name=name, featurizer=featurizer, finetune=finetune,
                             epochs=epochs, arch=arch, freeze_blocks=freeze_blocks, augment=augment,
                             class_weighting=class_weighting, train_size=train_size, group_by=group_by,
                             keep_checkpoints=keep_checkpoints, heads=heads,
                             concurrency=concurrency, per_host=per_host, timeout=timeout, retries=retries,
                             allow_private_hosts=allow_private_hosts).manifest
    except UsageError as e:
        fail(e.cli_message)
    typer.echo(f"wrote {out} (version {manifest['version']}, default head {manifest['default_head']})")


def report(
    input: Annotated[Path, typer.Argument(
        help="Labelled covers (folder per genre, CSV with path,genre, or link file), or a scored Parquet "
             "file or dataset folder from scorer catalog/links/playlist.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for index.html and its images.")],
    folds: Annotated[int, typer.Option(help="Labelled: cross-validation folds.", min=2, max=20)] = 5,
    seed: Annotated[int, typer.Option(help="Seed for every sample, the folds and the heads.")] = 0,
    heads: Annotated[Optional[str], typer.Option(
        help="Labelled: head kinds to cross-validate, e.g. knn,mlp [default: knn,xgboost,mlp,logreg].")] = None,
    per_genre: Annotated[Optional[int], typer.Option(
        help="Labelled: use at most this many covers per genre (seeded sample) for a quick report.", min=2)] = None,
    grid: Annotated[int, typer.Option(help="Labelled: covers per genre in the sight-check grid.", min=1,
                                      max=200)] = 12,
    activations: Annotated[int, typer.Option(
        help="Labelled: covers with activation maps, for correct and for wrong predictions each.", min=0,
        max=100)] = 6,
    activation_head: Annotated[Optional[str], typer.Option(
        help="Labelled: featurizer-head pair for the activation maps, e.g. cnn-mlp [default: best by CV].")] = None,
    projection: Annotated[str, typer.Option(help="Labelled: embedding map projection: pca, tsne or umap.")] = "pca",
    evaluation: Annotated[Optional[Path], typer.Option(
        help="Labelled: show this `scorer evaluate --json` result instead of cross-validating again.")] = None,
    featurizer: FeaturizerOpt = None,
    limit: Annotated[int, typer.Option(help="Scored: most covers in the gallery (a seeded sample beyond).",
                                       min=1)] = 600,
    concurrency: ConcurrencyOpt = 64,
    per_host: PerHostOpt = 16,
    timeout: TimeoutOpt = 60.0,
    retries: RetriesOpt = 3,
    allow_private_hosts: AllowPrivateOpt = False,
) -> None:
    """Write an HTML report (OUT/index.html) to look at covers, predictions and models.

    For labelled covers: a sight-check grid per genre, cross-validated figures with confusion
    heatmaps, a 2-D map of the CNN embeddings and occlusion activation maps. For a scored output:
    a summary and a gallery of covers with their genres, filterable by genre and kept.
    """
    from scorer import api
    from scorer.errors import UsageError

    try:
        index = api.report(input, out, folds=folds, seed=seed, heads=heads, per_genre=per_genre, grid=grid,
                           activations=activations, activation_head=activation_head, projection=projection,
                           evaluation=evaluation, featurizer=featurizer, limit=limit,
                           concurrency=concurrency, per_host=per_host, timeout=timeout, retries=retries,
                           allow_private_hosts=allow_private_hosts)
    except UsageError as e:
        fail(e.cli_message)
    typer.echo(f"wrote {index}")
