"""Limits every stage agrees on: the fetcher checks an image's header against them before the decoder
opens it."""

#: Refuse images above this many pixels before decoding them (decompression bombs).
MAX_PIXELS = 64_000_000
