"""Training covers as tensors: decoded once, then cropped, flipped and (``store``) stripped of what tells one
store's covers from another's, per batch. Shared by fine-tuning and the frozen trunk's views."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from scorer.decode import IMAGE_SIZE, decode_image
from scorer.featurize.cnn import default_threads
from scorer.training.dataset import Example

#: covers are decoded once at this size; training crops are cut from it and resized to 224
DECODE_SIZE = 256


def decode_all(examples: list[Example], size: int = DECODE_SIZE) -> np.ndarray:
    """Every cover as uint8 ``(N, size, size, 3)``, decoded on threads."""
    out = np.empty((len(examples), size, size, 3), dtype=np.uint8)

    def one(i: int) -> None:
        out[i] = decode_image(Path(examples[i].path).read_bytes(), size=size)

    with ThreadPoolExecutor(max_workers=default_threads()) as pool:
        list(pool.map(one, range(len(examples))))
    return out


def augment(images, rng: np.random.Generator, min_area: float, size: int = IMAGE_SIZE, store: bool = False):
    """Random square crops (``min_area``-100% of the area), resized to ``size``; half flipped.

    ``store`` also erases what tells one store's covers from another's: the shared Discogs covers
    are heavily compressed progressive JPEGs (quality about 25-30), the Spotify ones lightly
    compressed (about 90), and stores scale their covers differently. Half the crops are
    re-compressed at a random quality, some are scaled down and up again, and colours jitter a
    little, so that neither JPEG blocking nor sharpness says where a cover came from.
    """
    import torch
    import torch.nn.functional as F

    n, full = images.shape[0], images.shape[1]
    out = torch.empty((n, size, size, 3), dtype=torch.float32)
    sides = (np.sqrt(rng.uniform(min_area, 1.0, n)) * full).astype(int)
    for k in range(n):
        s = int(sides[k])
        y, x = rng.integers(0, full - s + 1, 2)
        crop = images[k, y:y + s, x:x + s].permute(2, 0, 1)[None].float()
        if store and rng.random() < 0.3:  # a smaller original, scaled up by the store or by us
            small = max(32, int(size * rng.uniform(0.35, 1.0)))
            crop = F.interpolate(crop, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[k] = crop[0].permute(1, 2, 0)
        if store:
            out[k] = _store_jitter(out[k], rng)
    flip = torch.from_numpy(rng.random(n) < 0.5)
    out[flip] = out[flip].flip(2)
    return out


def _store_jitter(image, rng: np.random.Generator):
    """One ``(H, W, 3)`` float image (0-255): colour jitter, then JPEG re-compression, each by chance."""
    import io

    import torch
    from PIL import Image

    if rng.random() < 0.5:
        b, c, s = rng.uniform(0.85, 1.15, 3)
        grey = image.mean(dim=2, keepdim=True)
        image = (image - grey) * s + grey  # saturation
        image = (image - image.mean()) * c + image.mean()  # contrast
        image = image * b  # brightness
    image = image.clamp(0, 255)
    if rng.random() < 0.5:
        buf = io.BytesIO()
        pixels = Image.fromarray(image.round().to(torch.uint8).numpy())
        pixels.save(buf, format="JPEG", quality=int(rng.integers(20, 96)), subsampling=int(rng.integers(0, 3)))
        with Image.open(io.BytesIO(buf.getvalue())) as decoded:
            image = torch.from_numpy(np.asarray(decoded.convert("RGB"), dtype=np.float32).copy())
    return image
