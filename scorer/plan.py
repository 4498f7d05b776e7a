"""One scoring plan for every runner: the model, head, keep filter, fetch options and batching, checked once.

The library builds a :class:`ScoringPlan` from its keyword arguments (:meth:`ScoringPlan.build`) and hands it
to whichever runner does the work (:mod:`scorer.runners`): a file, a sharded dataset, Ray Data, a playlist,
or covers held in memory. Every bad value is a :class:`~scorer.errors.UsageError` raised by ``build``, before
any cover is fetched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorer.errors import UsageError
from scorer.fetch import CoverFetcher, FetchOptions
from scorer.filters import KeepFilter
from scorer.model import ENSEMBLE, PRECISIONS, TTAS, Model
from scorer.options import Options, check_min_prob, keep_text
from scorer.scoring import Scorer

#: a model as the library takes it: None (the shipped default), a shipped model's name, a folder, or a Model
ModelArg = Model | str | os.PathLike | None


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

    @classmethod
    def build(cls, *, model: ModelArg = None, head: str | None = None, keep: str | Sequence[str] | None = None,
              min_prob: float | None = None, options: Options | None = None) -> ScoringPlan:
        """Check every argument and open the model; :class:`UsageError` for the first thing wrong."""
        options = (options or Options()).check()
        check_min_prob(min_prob)
        fetch = options.fetch()
        opened = open_model(model, head, options.precision, options.tta)
        keep_filter = KeepFilter.parse(keep_text(keep), opened.genres, min_prob, opened.aliases)
        return cls(opened, head or opened.default_head, keep_filter, fetch, options.batch_size, options.workers)

    def fetcher(self, base_dir: Path | None = None) -> CoverFetcher:
        """A cover fetcher with this plan's options (a context manager: it owns an event loop thread)."""
        return CoverFetcher(self.fetch, base_dir=base_dir)

    def scorer(self, fetcher: CoverFetcher | None, chunk_rows: int = 4096) -> Scorer:
        """The scoring stage for this plan, fetching through ``fetcher``."""
        return Scorer(self.model, self.head, self.keep, fetcher,  # type: ignore[arg-type]  # set before use
                      batch_size=self.batch_size, workers=self.workers, chunk_rows=chunk_rows)

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
            **extra,
        }
