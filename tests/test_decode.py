"""decode_image: bytes of any common cover format → (224, 224, 3) uint8 RGB, or a RowError with a code."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from scorer.decode import IMAGE_SIZE, decode_image
from scorer.errors import STATUS_CODES, RowError

WHITE = (255, 255, 255)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def handmade_png(width: int, height: int, bit_depth: int, colour_type: int, raw_rows: bytes) -> bytes:
    """A PNG built byte by byte: signature, IHDR, one IDAT of ``raw_rows`` (already filter-prefixed), IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw_rows))
            + png_chunk(b"IEND", b""))


def solid_png_16bit_rgb(size: int, rgb16: tuple[int, int, int]) -> bytes:
    row = b"\x00" + struct.pack(">HHH", *rgb16) * size
    return handmade_png(size, size, 16, 2, row * size)


def solid_png_16bit_grey(size: int, value: int) -> bytes:
    row = b"\x00" + struct.pack(">H", value) * size
    return handmade_png(size, size, 16, 0, row * size)


def palette_with_transparent_index() -> bytes:
    img = Image.new("P", (32, 32), 0)
    img.putpalette([0, 0, 255, 255, 0, 0] + [0] * (256 * 3 - 6))  # index 0 blue, index 1 red
    img.paste(1, (0, 0, 32, 16))  # top half red, bottom half blue
    return encode(img, "PNG", transparency=1)  # ... and red is the transparent index


def assert_shape(arr: np.ndarray) -> None:
    assert arr.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert arr.dtype == np.uint8


def assert_solid(arr: np.ndarray, colour: tuple[int, int, int], tol: int = 0) -> None:
    diff = np.abs(arr.astype(int) - np.array(colour)).max()
    lo, hi = arr.reshape(-1, 3).min(0), arr.reshape(-1, 3).max(0)
    assert diff <= tol, f"expected every pixel ≈ {colour}, got range {lo}..{hi}"


# ---------------------------------------------------------------- real covers


def _pooled(arr: np.ndarray, block: int = 8) -> np.ndarray:
    n = arr.shape[0] // block
    return arr.astype(float).reshape(n, block, n, block, 3).mean(axis=(1, 3))


@pytest.mark.shared_data
def test_real_covers_decode_to_model_input(sample_covers):
    assert len(sample_covers) == 40
    for path in sample_covers:
        data = path.read_bytes()
        arr = decode_image(data)
        assert_shape(arr)
        assert arr.std() > 0, path.name  # a real picture, not a blank
        # independent reference: a Lanczos resize of the fully decoded original. The kernels differ, so
        # compare 8x8-pooled pictures (layout and colour, no crop, no channel swap) and the mean colour.
        ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE),
                                                                            Image.Resampling.LANCZOS))
        pooled_diff = float(np.abs(_pooled(arr) - _pooled(ref)).mean())
        mean_diff = float(np.abs(arr.mean(axis=(0, 1)) - ref.mean(axis=(0, 1))).max())
        assert pooled_diff < 1.5, (path.name, pooled_diff)
        assert mean_diff < 1.0, (path.name, mean_diff)


# ---------------------------------------------------------------- modes and formats

SOLID_CASES = {
    "rgb-png-red": (lambda: encode(Image.new("RGB", (64, 64), (255, 0, 0)), "PNG"), (255, 0, 0), 0),
    "rgba-opaque-red": (lambda: encode(Image.new("RGBA", (64, 64), (255, 0, 0, 255)), "PNG"), (255, 0, 0), 0),
    "rgba-transparent-is-white": (lambda: encode(Image.new("RGBA", (64, 64), (255, 0, 0, 0)), "PNG"), WHITE, 0),
    "rgba-half-transparent-red-on-white": (
        lambda: encode(Image.new("RGBA", (64, 64), (255, 0, 0, 128)), "PNG"), (255, 127, 127), 1),
    "palette-blue": (
        lambda: encode(Image.new("RGB", (64, 64), (0, 0, 255)).convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        (0, 0, 255), 0),
    "grey-L": (lambda: encode(Image.new("L", (64, 64), 128), "PNG"), (128, 128, 128), 0),
    "grey-LA-opaque": (lambda: encode(Image.new("LA", (64, 64), (50, 255)), "PNG"), (50, 50, 50), 0),
    "grey-LA-transparent-is-white": (lambda: encode(Image.new("LA", (64, 64), (50, 0)), "PNG"), WHITE, 0),
    "bilevel-1-white": (lambda: encode(Image.new("1", (64, 64), 1), "PNG"), WHITE, 0),
    "cmyk-jpeg-red": (lambda: encode(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG", quality=95),
                      (255, 0, 0), 3),
    "grey-jpeg": (lambda: encode(Image.new("L", (64, 64), 77), "JPEG", quality=95), (77, 77, 77), 2),
    "webp-green": (lambda: encode(Image.new("RGB", (64, 64), (0, 200, 0)), "WEBP", lossless=True), (0, 200, 0), 0),
    "webp-transparent-is-white": (
        lambda: encode(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), "WEBP", lossless=True), WHITE, 0),
    "gif-orange": (lambda: encode(Image.new("RGB", (64, 64), (255, 128, 0)), "GIF"), (255, 128, 0), 0),
    "bmp-teal": (lambda: encode(Image.new("RGB", (64, 64), (0, 128, 128)), "BMP"), (0, 128, 128), 0),
    "tiny-1x1": (lambda: encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"), (10, 20, 30), 0),
    "png-16bit-rgb": (lambda: solid_png_16bit_rgb(16, (0x8080, 0x4040, 0xFFFF)), (128, 64, 255), 1),
}


@pytest.mark.parametrize("case", list(SOLID_CASES))
def test_solid_fill_keeps_its_colour(case):
    make, colour, tol = SOLID_CASES[case]
    arr = decode_image(make())
    assert_shape(arr)
    assert_solid(arr, colour, tol)


def test_16bit_greyscale_png_is_scaled_not_clipped():
    # 0x8080 / 0xFFFF is mid-grey: an 8-bit viewer shows 128.
    assert_solid(decode_image(solid_png_16bit_grey(16, 0x8080)), (128, 128, 128), 1)


def test_16bit_greyscale_png_decodes_to_rgb_shape():
    assert_shape(decode_image(solid_png_16bit_grey(16, 0x8080)))


def test_palette_transparency_index_becomes_white():
    arr = decode_image(palette_with_transparent_index())
    assert_shape(arr)
    assert_solid(arr[:100], WHITE)  # top half: the transparent (red) index
    assert_solid(arr[124:], (0, 0, 255))  # bottom half: opaque blue


@pytest.mark.parametrize("size", [(1000, 10), (10, 1000), (3000, 200)])
def test_non_square_images_are_stretched_not_cropped(size):
    w, h = size
    img = Image.new("RGB", size, (255, 0, 0))
    # second half along the long side is blue: both colours must survive (no centre crop)
    ImageDraw.Draw(img).rectangle((w // 2, 0, w, h) if w > h else (0, h // 2, w, h), fill=(0, 0, 255))
    arr = decode_image(encode(img, "PNG"))
    assert_shape(arr)
    first, second = (arr[:, :100], arr[:, 124:]) if w > h else (arr[:100], arr[124:])
    assert_solid(first, (255, 0, 0))
    assert_solid(second, (0, 0, 255))


def test_custom_size():
    arr = decode_image(encode(Image.new("RGB", (300, 300), (1, 2, 3)), "PNG"), size=64)
    assert arr.shape == (64, 64, 3)
    assert arr.dtype == np.uint8
    assert_solid(arr, (1, 2, 3))


# ---------------------------------------------------------------- big JPEGs and draft()


def _busy_picture(n: int) -> Image.Image:
    """Smooth gradients plus a few hard-edged shapes: what a large cover scan looks like."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    rgb = np.stack([255 * xx, 255 * yy, 255 * (1 - xx) * (1 - yy)], axis=-1).astype(np.uint8)
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    draw.ellipse((n * 0.1, n * 0.1, n * 0.45, n * 0.45), fill=(250, 240, 20))
    draw.rectangle((n * 0.55, n * 0.2, n * 0.9, n * 0.6), fill=(20, 30, 120))
    draw.polygon([(n * 0.2, n * 0.9), (n * 0.5, n * 0.55), (n * 0.8, n * 0.95)], fill=(200, 20, 60))
    draw.line((0, n * 0.7, n, n * 0.75), fill=(0, 0, 0), width=n // 50)
    return img


def test_large_jpeg_draft_does_not_change_the_picture_materially():
    data = encode(_busy_picture(2000), "JPEG", quality=90)
    # precondition: this JPEG really takes the reduced-scale (draft) path
    probe = Image.open(io.BytesIO(data))
    probe.draft("RGB", (IMAGE_SIZE, IMAGE_SIZE))
    assert probe.size[0] < 2000

    fast = decode_image(data)
    full = Image.open(io.BytesIO(data)).convert("RGB")  # full-resolution decode, no draft
    assert full.size == (2000, 2000)
    ref = np.asarray(full.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS))
    assert_shape(fast)
    diff = np.abs(fast.astype(int) - ref.astype(int))
    assert diff.mean() < 3.0
    # the shapes are where they should be (e.g. the yellow disc centred at ~28% of the width)
    c = int(0.275 * IMAGE_SIZE)
    assert np.abs(fast[c, c].astype(int) - (250, 240, 20)).max() <= 12


# ---------------------------------------------------------------- failures


def _code(data: bytes) -> RowError:
    with pytest.raises(RowError) as info:
        decode_image(data)
    err = info.value
    assert err.code in STATUS_CODES and err.code != "ok"
    assert err.message
    return err


@pytest.mark.parametrize("data", [
    b"",
    b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>gone</body></html>",
    b"\x00" * 512,
    b'{"error": "rate limited"}',
], ids=["empty", "html", "zeros", "json"])
def test_not_an_image(data):
    assert _code(data).code == "not_an_image"


@pytest.mark.shared_data
def test_truncated_real_jpeg_is_a_decode_error(sample_covers):
    data = sample_covers[0].read_bytes()
    assert decode_image(data).shape == (IMAGE_SIZE, IMAGE_SIZE, 3)  # the whole file is fine
    assert _code(data[: len(data) // 2]).code == "decode_error"


def test_truncated_png_is_a_decode_error():
    data = encode(_busy_picture(300), "PNG")
    assert _code(data[: len(data) // 2]).code == "decode_error"


def test_png_with_corrupt_pixel_data_is_a_decode_error():
    data = bytearray(encode(Image.new("RGB", (32, 32), (5, 5, 5)), "PNG"))
    idat = data.find(b"IDAT")
    data[idat + 6] ^= 0xFF  # inside the zlib stream of the pixel data
    assert _code(bytes(data)).code == "decode_error"


# A hand-made PNG that declares a huge canvas but carries almost no data. The check runs in a child
# process whose address space is capped at (current size + 128 MiB): if decode_image allocated the
# pixels it would die with MemoryError instead of answering too_large. The 8000x8000 control case
# (under the pixel limit, 256 MB of pixels) shows that the cap really does stop an allocation.
BOMB_PROBE = textwrap.dedent("""
    import json, resource, struct, sys, zlib
    from scorer.decode import decode_image
    from scorer.errors import RowError

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    def png(w, h):
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        idat = zlib.compress(b"\\x00" * 64)
        return b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")

    vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize")) * 1024
    cap = vm + (128 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    out = {}
    for side in map(int, sys.argv[1:]):
        data = png(side, side)
        try:
            decode_image(data)
            out[side] = "decoded"
        except RowError as e:
            out[side] = e.code
        except MemoryError:
            out[side] = "MemoryError"
    print(json.dumps(out))
""")


def test_decompression_bomb_is_refused_without_allocating():
    proc = subprocess.run([sys.executable, "-c", BOMB_PROBE, "30000", "9000", "8000"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["30000"] == "too_large"  # 900 Mpx: far above the limit
    assert result["9000"] == "too_large"  # 81 Mpx: above MAX_PIXELS (64 Mpx), below Pillow's error threshold
    assert result["8000"] == "MemoryError"  # control: allowed size, so it allocates and hits the cap


def test_decompression_bomb_in_process():
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) \
        + png_chunk(b"IEND", b"")
    assert len(data) < 200
    err = _code(data)
    assert err.code == "too_large"
    assert "900000000" in err.message or "30000" in err.message
