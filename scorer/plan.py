"""One scoring plan for every runner: the model, head, keep filter, fetch options and batching, checked once.

The library builds a :class:`ScoringPlan` from its keyword arguments (:meth:`ScoringPlan.build`) and hands it
to whichever runner does the work (:mod:`scorer.runners`): a file, a sharded dataset, Ray Data, a playlist,
or covers held in memory. Every bad value is a :class:`~scorer.errors.UsageError` raised by ``build``, before
any cover is fetched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorer.errors import UsageError
from scorer.fetch import CoverFetcher, FetchOptions
from scorer.filters import KeepFilter, split_keep
from scorer.model import ENSEMBLE, PRECISIONS, TTAS, Model
from scorer.options import Options, check_min_prob, keep_text
from scorer.scoring import EMBEDDING, Companion, Scorer, output_columns

#: a model as the library takes it: None (the shipped default), a shipped model's name, a folder, or a Model
ModelArg = Model | str | os.PathLike | None
#: models scored beside the main one: a model (folder, name or Model), ``"NAME=FOLDER"``, a list of these, or a
#: ``{name: model}`` mapping; NAME is the prefix of the model's columns (default: its manifest's name)
AlsoArg = ModelArg | Sequence[ModelArg] | Mapping[str, ModelArg]
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def open_model(model: ModelArg, head: str | None, precision: str | None = None, tta: str | None = None) -> Model:
    """The model to score with (a loaded :class:`Model` is used as it is unless ``precision`` or ``tta`` ask
    for another variant of it); :class:`UsageError` for anything wrong, checked before any work."""
    if precision is not None and precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
    if tta is not None and tta not in TTAS:
        raise UsageError(f"--tta {tta}: use one of {', '.join(TTAS)}")
    if isinstance(model, Model) and precision in (None, model.precision) and tta in (None, model.tta):
        opened = model
    else:
        try:
            opened = Model(model.dir if isinstance(model, Model) else model, precision=precision, tta=tta)
        except (ValueError, FileNotFoundError) as e:
            raise UsageError.of(e) from None
    if head is not None and head not in opened.head_names:
        raise UsageError(f"unknown head {head!r}; this model has: {', '.join(opened.head_names)}")
    return opened


def check_out(out: Path | None) -> None:
    """A single-file output is a ``.parquet`` file name that is not a folder."""
    if out is None:
        return
    if Path(out).suffix.lower() not in (".parquet", ".pq"):
        raise UsageError(f"--out {out}: give a .parquet file name")
    if Path(out).is_dir():
        raise UsageError(f"--out {out} is a directory; give a .parquet file name")
    folder = next((p for p in Path(out).parents if p.exists()), None)  # the nearest one there is
    if folder is not None and not folder.is_dir():
        raise UsageError(f"--out {out}: {folder} is a file, not a folder; give a .parquet file name in a folder")


@dataclass(frozen=True)
class ScoringPlan:
    """What a scoring run does, checked: ``model`` and its ``head``, the ``keep`` filter (genres and minimum
    probability), how covers are fetched, and the batching of the featurizer."""

    model: Model
    head: str
    keep: KeepFilter
    fetch: FetchOptions
    batch_size: int | None = None
    workers: int = 4
    also: tuple[Companion, ...] = ()
    embeddings: bool = False

    @classmethod
    def build(cls, *, model: ModelArg = None, head: str | None = None, keep: str | Sequence[str] | None = None,
              min_prob: float | None = None, options: Options | None = None, also: AlsoArg = None,
              embeddings: bool = False) -> ScoringPlan:
        """Check every argument and open the models; :class:`UsageError` for the first thing wrong."""
        options = (options or Options()).check()
        check_min_prob(min_prob)
        if not isinstance(embeddings, bool):
            raise UsageError(f"--embeddings {embeddings!r}: give True or False")
        fetch = options.fetch()
        opened = open_model(model, head, options.precision, options.tta)
        companions = _companions(also, opened, options)
        if not companions:
            keep_filter = KeepFilter.parse(keep_text(keep), opened.genres, min_prob, opened.aliases)
            return cls(opened, head or opened.default_head, keep_filter, fetch, options.batch_size, options.workers,
                       embeddings=embeddings)
        models = [("", opened.genres, opened.aliases), *((c.name, c.model.genres, c.model.aliases)
                                                         for c in companions)]
        shares = split_keep(keep_text(keep), models)
        if min_prob is not None and not any(shares):
            raise UsageError("--min-prob needs --keep: it is the summed probability of the kept genres")
        filters = [KeepFilter.parse(share or None, known, min_prob if share else None, aliases)
                   for share, (_, known, aliases) in zip(shares, models)]
        companions = [Companion(c.name, c.model, c.head_name, f) for c, f in zip(companions, filters[1:])]
        plan = cls(opened, head or opened.default_head, filters[0], fetch, options.batch_size, options.workers,
                   tuple(companions), embeddings)
        outputs = plan.columns()
        if len(set(outputs)) < len(outputs):
            clash = sorted({c for c in outputs if outputs.count(c) > 1})
            raise UsageError(f"also: the models' columns clash ({', '.join(clash)}); name them apart with "
                             "NAME=FOLDER (--also NAME=FOLDER)")
        return plan

    def columns(self) -> list[str]:
        """The columns this plan's runs add to the input's."""
        return output_columns(self.model.genres, self.also, self.embeddings)

    def fetcher(self, base_dir: Path | None = None) -> CoverFetcher:
        """A cover fetcher with this plan's options (a context manager: it owns an event loop thread)."""
        return CoverFetcher(self.fetch, base_dir=base_dir)

    def scorer(self, fetcher: CoverFetcher | None, chunk_rows: int = 4096) -> Scorer:
        """The scoring stage for this plan, fetching through ``fetcher``."""
        return Scorer(self.model, self.head, self.keep, fetcher,  # type: ignore[arg-type]  # set before use
                      batch_size=self.batch_size, workers=self.workers, chunk_rows=chunk_rows, also=self.also,
                      embeddings=self.embeddings)

    def metadata(self, **extra: Any) -> dict:
        """What every output records about how it was made."""
        model = self.model
        return {
            "genres": model.genres,
            "head": self.head,
            "ensemble_members": model.manifest.get("ensemble") if self.head == ENSEMBLE else None,
            "keep": list(self.keep.genres),
            "min_prob": self.keep.min_prob,
            "model": model.manifest,
            "model_version": model.version,
            "precision": model.precision,
            "tta": model.tta,
            "featurizer_id": model.variants[model.precision]["id"],
            "calibration": model.calibration(self.head).as_dict(),
            "also": [{"name": c.name, "dir": str(c.model.dir), "model_version": c.model.version, "head": c.head_name,
                      "labels": c.model.genres, "keep": list(c.keep.genres), "min_prob": c.keep.min_prob,
                      "featurizer_id": c.model.network_key[0],
                      "shares_network": c.model.network_key == model.network_key} for c in self.also],
            "embedding": {"column": EMBEDDING, "featurizer_id": model.network_key[0], "tta": model.tta,
                          "dim": int(model.cnn.dim), "dtype": "float16"} if self.embeddings else None,
            **extra,
        }

    def settings(self) -> dict:
        """What an incremental run compares to decide whether earlier scores still hold."""
        return {"model_version": self.model.version, "head": self.head, "keep": list(self.keep.genres),
                "min_prob": self.keep.min_prob,
                **({"also": [[c.name, c.model.version, c.head_name, list(c.keep.genres), c.keep.min_prob]
                             for c in self.also]} if self.also else {}),
                **({"embeddings": True} if self.embeddings else {})}


def _companions(also: AlsoArg, main: Model, options: Options) -> list[Companion]:
    """The models of ``also``, opened and named (keep filters come later)."""
    if also is None:
        return []
    if isinstance(also, Mapping):
        items: list[tuple[str | None, ModelArg]] = [(str(k), v) for k, v in also.items()]
    else:
        listed = [also] if isinstance(also, (str, os.PathLike, Model)) else list(also)
        items = [_named(a) for a in listed]
    out: list[Companion] = []
    for name, arg in items:
        if arg is None:
            raise UsageError("also: give a model folder or name for each model to score beside the main one")
        try:
            opened = open_model(arg, None, None, main.tta)
        except UsageError as e:
            raise UsageError(f"--also {os.fspath(arg) if not isinstance(arg, Model) else arg.dir}: "
                             f"{e.cli_message}") from None
        if main.precision in opened.variants and opened.precision != main.precision:  # so they can share it
            opened = open_model(opened, None, main.precision, main.tta)
        label = name if name is not None else _slug(str(opened.manifest.get("name") or opened.dir.name))
        if not _NAME.fullmatch(label):
            raise UsageError(f"also: {label!r} cannot prefix column names; give NAME=FOLDER with NAME of lowercase "
                             "letters, digits and _, starting with a letter")
        if any(c.name == label for c in out):
            raise UsageError(f"also: two models are called {label!r}; name them apart with NAME=FOLDER")
        out.append(Companion(label, opened, opened.default_head, KeepFilter()))
    return out


def _named(arg: ModelArg) -> tuple[str | None, ModelArg]:
    """``"NAME=FOLDER"`` split, unless the whole text is a folder there is."""
    if isinstance(arg, str) and "=" in arg and not Path(arg).exists():
        name, _, rest = arg.partition("=")
        return name.strip(), rest.strip()
    return None, arg


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
