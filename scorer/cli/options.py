"""The command line's shared options (typer ``Annotated`` types), and how a command fails or notes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from scorer.options import RANGES


def _range(name: str) -> dict:
    """typer's ``min``/``max`` for option ``name``: the library's range (:data:`scorer.options.RANGES`)."""
    low, high = RANGES[name]
    return {"min": low, **({"max": high} if high is not None else {})}


ModelOpt = Annotated[Optional[Path], typer.Option("--model", help="Model directory (default: the shipped model).")]
FeaturizerOpt = Annotated[Optional[Path], typer.Option(
    "--featurizer", help="CNN featurizer ONNX file (default: the shipped EfficientNet-Lite0).")]
HeadOpt = Annotated[Optional[str], typer.Option("--head", help="Head to score with (default: the model's best by CV).")]
KeepOpt = Annotated[Optional[str], typer.Option(
    "--keep", help="Comma-separated genres to keep, e.g. rock,pop; with --also, labels of any of the models "
                   "(rock,like: rock covers the other model would like).")]
AlsoOpt = Annotated[Optional[list[str]], typer.Option(
    "--also", help="Another model (folder or name) scored in the same pass, adding NAME_label, NAME_prob and "
                   "NAME_p_<label> columns (NAME: the model's name, or --also NAME=FOLDER). Repeatable.",
    show_default=False)]
EmbeddingsOpt = Annotated[bool, typer.Option(
    "--embeddings", help="Add each cover's network features (float16) as an embedding column, for scorer similar.")]
MinProbOpt = Annotated[Optional[float], typer.Option(
    "--min-prob", help="Keep rows whose kept genres' summed probability reaches this (0-1), instead of top-1.")]


AllowPrivateOpt = Annotated[bool, typer.Option(
    "--allow-private-hosts",
    help="Allow cover URLs on loopback and private networks (refused by default; link-local never).")]
ConcurrencyOpt = Annotated[int, typer.Option(help="HTTP requests in flight.", **_range("concurrency"))]
PerHostOpt = Annotated[int, typer.Option(help="Connections to any one host.", **_range("per_host"))]
TimeoutOpt = Annotated[float, typer.Option(
    "--timeout", help="Seconds one request may take in all (connect and read stalls time out sooner).",
    **_range("timeout"))]
RetriesOpt = Annotated[int, typer.Option(help="Retries for connection errors, timeouts, 5xx and 429.",
                                         **_range("retries"))]
NoLocalOpt = Annotated[bool, typer.Option(
    "--no-local-files", envvar="SCORER_NO_LOCAL_FILES",
    help="Refuse local paths and file:// URLs in the input (status local_file_refused): for catalogs from others, "
         "which could otherwise learn which files exist here.")]
CacheOpt = Annotated[bool, typer.Option(
    "--cache/--no-cache", help="Keep fetched covers in the on-disk cache ($SCORER_CACHE_DIR/covers).")]
CacheSizeOpt = Annotated[Optional[str], typer.Option(
    "--cache-max-size", help="Bound of the cover cache, e.g. 20GB; the least recently used covers go first "
                             "[default: $SCORER_CACHE_MAX_SIZE or 10GB].", show_default=False)]


BatchOpt = Annotated[Optional[int], typer.Option(
    help="Covers per featurizer batch [default: 16 on CPU, 128 on a GPU].", show_default=False,
    **_range("batch_size"))]
PrecisionOpt = Annotated[Optional[str], typer.Option(
    help="Featurizer precision: fp32 or int8 [default: the model's choice, see `scorer info`].",
    show_default=False)]
TtaOpt = Annotated[Optional[str], typer.Option(
    help="Test-time augmentation: flip (each cover's features averaged with its mirror image's: the network runs "
         "twice per cover) or none [default: the model's choice, see `scorer info`].", show_default=False)]
WorkersOpt = Annotated[int, typer.Option(help="Decode threads.", **_range("workers"))]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")]
FinetuneOpt = Annotated[bool, typer.Option(
    "--finetune", help="Fine-tune the pretrained CNN on the labelled covers first (torch: the 'export' extra).")]
EpochsOpt = Annotated[int, typer.Option(help="--finetune: epochs.", min=1, max=100)]
ArchOpt = Annotated[str, typer.Option(help="--finetune: the pretrained network, lite0, lite1 or lite2.")]
TrainSizeOpt = Annotated[int, typer.Option(
    help="--finetune: pixels of the training crops (the network scores at 224 either way; 160 trains about 3x as "
         "fast on a CPU).", min=96, max=256)]
UnknownGenresOpt = Annotated[bool, typer.Option(
    "--unknown-genres", help="Also leave each genre out of training in turn and report how sure the model is of "
                             "its covers (one more fit, or fine-tuning, per genre).")]
FreezeOpt = Annotated[int, typer.Option(
    help="--finetune: the stem and this many first blocks keep their ImageNet weights (0: train all).")]
AugmentOpt = Annotated[str, typer.Option(
    help="--finetune: store (crops, flips, and JPEG re-compression, rescaling and colour jitter that erase which "
         "store a cover came from) or basic (crops and flips).")]
KeepCheckpointsOpt = Annotated[bool, typer.Option(
    "--keep-checkpoints", help="--finetune: keep each network's checkpoint in the cache after its export "
                               "(by default it is deleted then; it only serves to resume a stopped run).")]
WeightingOpt = Annotated[str, typer.Option(
    help="--finetune: balanced (every genre weighs the same in the loss) or none (every cover does).")]


DataArg = Annotated[list[Path], typer.Argument(
    help="Labelled covers: a folder with one sub-folder per genre (or a labels.csv), a CSV with path,genre, or a "
         "link file (.tsv) to fetch. Several (one per store, say) are read as one set, and figures are also given "
         "per input.", show_default=False)]
GroupByOpt = Annotated[Optional[str], typer.Option(
    help="CSV column (e.g. artist) whose groups never straddle folds; an empty value is unknown. Near-duplicate "
         "covers are always grouped.")]


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def notes_on_stderr() -> Iterator[None]:
    """The library's notes (logger ``scorer``, INFO: a detected encoding, training progress) printed on stderr as
    they come, while a command runs."""
    logger = logging.getLogger("scorer")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@contextmanager
def quiet_notes() -> Iterator[None]:
    """Only warnings, inside the block (``scorer evaluate --json``: the JSON is the output)."""
    logger = logging.getLogger("scorer")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
