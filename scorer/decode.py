"""Bytes → model-ready pixels: RGB, uint8, 224x224 (no crop: covers are square)."""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import RowError

IMAGE_SIZE = 224
#: Refuse images above this many pixels before decoding them (decompression bombs).
MAX_PIXELS = 64_000_000

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def decode_image(data: bytes, size: int = IMAGE_SIZE) -> np.ndarray:
    """Decode one cover into a ``(size, size, 3)`` uint8 RGB array, or raise :class:`RowError`.

    JPEGs are decoded at a reduced scale (``draft``) when they are much larger than ``size``,
    which makes decoding several times cheaper for big covers.
    """
    if not data:
        raise RowError("not_an_image", "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise RowError("too_large", f"image is {img.width}x{img.height} pixels")
            if img.format == "JPEG":
                img.draft("RGB", (size, size))
            if img.mode != "RGB":
                img = _to_rgb(img)
            img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            return np.asarray(img, dtype=np.uint8)
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
