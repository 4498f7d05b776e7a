"""Bytes → model-ready pixels: RGB, uint8, 224x224 (no crop: covers are square)."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from scorer.errors import RowError
from scorer.limits import MAX_PIXELS

IMAGE_SIZE = 224

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


#: what a cover can be besides a URL or a path: its file's bytes, a PIL image, or a numpy array
InMemory = Union[bytes, bytearray, memoryview, Image.Image, np.ndarray]


def decode_image(data: InMemory, size: int = IMAGE_SIZE) -> np.ndarray:
    """Decode one cover (a file's bytes, or an image already in memory) into a ``(size, size, 3)`` uint8
    RGB array, or raise :class:`RowError`.

    JPEGs are decoded at a reduced scale (``draft``) when they are much larger than ``size``,
    which makes decoding several times cheaper for big covers.
    """
    with _pillow_faults():
        if isinstance(data, np.ndarray):
            return _prepare(from_array(data), size)
        if isinstance(data, Image.Image):
            return _prepare(data, size)
        if not data:
            raise RowError("not_an_image", "empty file")
        img = Image.open(io.BytesIO(data))
        # draft shrinks the size _prepare checks, so a JPEG over the limit is left whole for it to refuse
        if img.width * img.height <= MAX_PIXELS and img.format == "JPEG":
            img.draft("RGB", (size, size))
        return _prepare(img, size)


def _prepare(img: Image.Image, size: int) -> np.ndarray:
    if img.width * img.height > MAX_PIXELS:
        raise RowError("too_large", f"image is {img.width}x{img.height} pixels")
    if img.mode != "RGB":
        img = _to_rgb(img)
    img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(img, dtype=np.uint8)


@contextmanager
def _pillow_faults() -> Iterator[None]:
    """Pillow's faults on damaged or hostile data, as the :class:`RowError` of the row."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except RowError:
        raise
    except UnidentifiedImageError as e:
        raise RowError("not_an_image", "not a recognised image format") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise RowError("too_large", str(e)) from e
    except (OSError, SyntaxError, ValueError) as e:
        raise RowError("decode_error", f"damaged image: {e}") from e
    except (IndexError, KeyError, TypeError, struct.error, ZeroDivisionError) as e:
        # Pillow's format plugins raise these on some malformed headers
        raise RowError("decode_error", f"damaged image ({type(e).__name__}): {e}") from e


def from_array(array: np.ndarray) -> Image.Image:
    """A numpy image as Pillow reads it: uint8, ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA
    (RGB order, as Pillow and matplotlib give it; OpenCV's BGR arrays need ``[..., ::-1]`` first)."""
    shape = tuple(array.shape)
    ok_shape = array.ndim == 2 or (array.ndim == 3 and shape[2] in (3, 4))
    if array.dtype != np.uint8 or not ok_shape or min(shape[:2]) < 1:
        raise RowError("not_an_image", f"a numpy cover must be uint8 of shape (H, W), (H, W, 3) RGB or "
                                       f"(H, W, 4) RGBA; got {array.dtype} {shape}")
    if shape[0] * shape[1] > MAX_PIXELS:
        raise RowError("too_large", f"image is {shape[1]}x{shape[0]} pixels")
    return Image.fromarray(np.ascontiguousarray(array))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten transparency onto white (how covers are shown) and convert any mode to RGB."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit (or float) greyscale: scale to 8 bits instead of clipping at 255
        arr = np.asarray(img, dtype=np.float32)
        if arr.max(initial=0) > 255:
            arr = arr / 257.0
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")
