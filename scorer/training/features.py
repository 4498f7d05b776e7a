"""Feature extraction for training, with an on-disk cache keyed by image hash and featurizer id."""

from __future__ import annotations

import io
from pathlib import Path
from typing import cast

import numpy as np

from scorer.engine import batched, decoded, stack_images
from scorer.fetch import CoverFetcher, FetchOptions
from scorer.progress import progress
from scorer.training.dataset import Example
from scorer.training.feature_cache import FeatureCache, default_cache_dir


class Degraded:
    """A featurizer seeing each cover as a small, re-compressed thumbnail would show it: scaled down to ``px``
    (Lanczos), saved as JPEG at ``quality``, decoded and scaled back up as scoring does. The Discogs thumbnails
    users meet are 150 px; the training covers are 300."""

    def __init__(self, inner, px: int = 150, quality: int = 80):
        self.inner, self.px, self.quality = inner, px, quality
        self.id = f"{inner.id}+thumb{px}q{quality}"
        self.kind = getattr(inner, "kind", "cnn")

    def degrade(self, images: np.ndarray) -> np.ndarray:
        from PIL import Image

        from scorer.decode import decode_image

        out = np.empty_like(images)
        for i, image in enumerate(images):
            small = Image.fromarray(image).resize((self.px, self.px), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            small.save(buf, format="JPEG", quality=self.quality)
            out[i] = decode_image(buf.getvalue(), size=images.shape[1])
        return out

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.inner(self.degrade(np.asarray(images, dtype=np.uint8)))


def extract(examples: list[Example], featurizers: dict, cache_root: Path | None = None,
            batch_size: int = 8, label: str = "featurizing") -> dict[str, np.ndarray]:
    """Features per featurizer kind, in ``examples`` order. Cached vectors are not recomputed.

    Raises ``ValueError`` naming the first few images that could not be decoded.
    """
    cache_root = cache_root or default_cache_dir()
    caches = {k: FeatureCache(cache_root, f.id) for k, f in featurizers.items()}
    out: dict[str, list[np.ndarray | None]] = {k: [None] * len(examples) for k in featurizers}
    todo = []
    for i, ex in enumerate(examples):
        missing = False
        for k, cache in caches.items():
            out[k][i] = cache.get(ex.sha256)
            missing |= out[k][i] is None
        if missing:
            todo.append(i)

    failures = []
    # examples are local files (link files are fetched into the cover cache first)
    with CoverFetcher(FetchOptions(cache=False)) as fetcher, progress(label, total=len(todo)) as advance:
        stream = decoded(todo, lambda i: examples[i].path, fetcher)
        for batch in batched(stream, batch_size):
            ok = [o for o in batch if o.image is not None]
            failures += [(examples[o.item].path, o.error.message) for o in batch if o.error is not None]
            if ok:
                images = stack_images(ok)
                for k, featurizer in featurizers.items():
                    vectors = featurizer(images)
                    for o, v in zip(ok, vectors):
                        out[k][o.item] = v
                        caches[k].put(examples[o.item].sha256, v)
            advance(len(batch))
    if failures:
        shown = "; ".join(f"{p}: {m}" for p, m in failures[:5])
        raise ValueError(f"{len(failures)} labelled image(s) could not be read: {shown}")
    # every slot is filled now: a cover neither cached nor featurized failed above
    return {k: np.stack(cast("list[np.ndarray]", v)).astype(np.float32) for k, v in out.items()}
