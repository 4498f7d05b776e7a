"""Occlusion sensitivity: which parts of a cover a prediction rests on.

A grey patch slides over the cover; at each position the model scores the occluded cover again,
and the drop in the predicted genre's probability is that region's importance (Zeiler & Fergus,
2014). It needs only forward passes, so it works for any featurizer + head, ONNX or not.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]  # uint8 (N, H, W, 3) → probabilities (N, genres)


def patch_positions(size: int, patch: int, stride: int) -> list[int]:
    """Top-left corners along one side; the last patch always touches the far edge."""
    if patch > size:
        raise ValueError(f"patch {patch} is larger than the image ({size})")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def occlusion_map(image: np.ndarray, predict: Predict, target: int, patch: int = 48, stride: int = 16,
                  fill: int = 128, batch: int = 32) -> tuple[np.ndarray, float]:
    """Per-pixel drop of ``target``'s probability when the patch covers that pixel.

    Returns ``(heat, base)``: ``heat`` is ``(H, W)`` float, the mean drop over every patch that
    covered the pixel (negative where hiding it *raised* the probability), and ``base`` is the
    unoccluded probability.
    """
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    base = float(predict(image[None])[0, target])
    corners = [(y, x) for y in patch_positions(h, patch, stride) for x in patch_positions(w, patch, stride)]
    total = np.zeros((h, w), dtype=np.float64)
    hits = np.zeros((h, w), dtype=np.float64)
    for start in range(0, len(corners), batch):
        chunk = corners[start:start + batch]
        occluded = np.repeat(image[None], len(chunk), axis=0)
        for k, (y, x) in enumerate(chunk):
            occluded[k, y:y + patch, x:x + patch] = fill
        probs = predict(occluded)[:, target]
        for (y, x), p in zip(chunk, probs):
            total[y:y + patch, x:x + patch] += base - float(p)
            hits[y:y + patch, x:x + patch] += 1
    return (total / np.maximum(hits, 1)).astype(np.float32), base


#: drops below this are noise: a map whose largest drop is smaller is not painted at full strength
MIN_SCALE = 0.02


def overlay(image: np.ndarray, heat: np.ndarray, scale: float | None = None, alpha: float = 0.6,
            smooth: float = 6.0) -> np.ndarray:
    """The cover with positive drops painted over it (dark red → yellow as the drop grows).

    ``scale`` is the drop shown at full strength (default: this map's largest drop, at least
    :data:`MIN_SCALE`), so maps drawn with one shared scale can be compared. ``smooth`` (pixels)
    softens the patch grid for display.
    """
    import cv2

    positive = np.clip(heat, 0, None).astype(np.float32)
    if smooth:
        positive = cv2.GaussianBlur(positive, (0, 0), smooth)
    scale = scale if scale is not None else max(float(positive.max()), MIN_SCALE)
    v = positive / scale if scale > 0 else np.zeros_like(positive)
    v = np.clip(v, 0, 1).astype(np.float32)
    colour = cv2.applyColorMap((v * 255).astype(np.uint8), cv2.COLORMAP_HOT)[..., ::-1].astype(np.float32)
    weight = (alpha * np.sqrt(v))[..., None]  # faint drops stay faint, strong ones dominate
    grey = image.astype(np.float32).mean(axis=2, keepdims=True) * 0.35 + image.astype(np.float32) * 0.65
    return np.clip(grey * (1 - weight) + colour * weight, 0, 255).astype(np.uint8)
