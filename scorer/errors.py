"""Error codes every unscored row carries in its ``status`` column, and the exception behind them."""

from __future__ import annotations

#: Documented status codes. ``ok`` means scored; everything else is a failure with a message.
STATUS_CODES = {
    "ok": "scored",
    "missing_url": "the row has no cover_url",
    "not_found": "local file does not exist",
    "unreadable": "local file could not be read",
    "bad_url": "cover_url is neither a local path nor an http(s) URL",
    "timeout": "the server did not answer in time",
    "http_404": "the server answered 404",
    "http_4xx": "the server answered another 4xx",
    "http_5xx": "the server answered 5xx",
    "fetch_error": "connection failed",
    "too_large": "the response or image exceeds the size limit",
    "not_an_image": "the bytes are not an image format we can read",
    "decode_error": "the image is damaged or truncated",
}


class RowError(Exception):
    """A per-row failure: becomes ``status=code`` and ``error=message`` in the output."""

    def __init__(self, code: str, message: str):
        assert code in STATUS_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
