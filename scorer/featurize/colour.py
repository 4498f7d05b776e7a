"""The classic colour baseline: an 8x8x8 HSV histogram (OpenCV ``calcHist``), L1-normalised."""

from __future__ import annotations

import numpy as np

BINS = (8, 8, 8)


class ColourFeaturizer:
    """512-d HSV histogram. Cheap; computed on the same 224x224 pixels the CNN sees."""

    kind = "colour"
    dim = int(np.prod(BINS))
    id = "hsv-hist-8x8x8-l1"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.stack([hsv_histogram(img) for img in images]).astype(np.float32)


def hsv_histogram(rgb: np.ndarray) -> np.ndarray:
    import cv2

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # OpenCV hue is 0..179
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(BINS), [0, 180, 0, 256, 0, 256]).ravel()
    total = hist.sum()
    return hist / total if total > 0 else hist
