"""The errors a caller meets: :class:`UsageError` for a bad argument, and the status codes every unscored row
carries (with :class:`RowError`, the exception behind them). Imports nothing heavy: ``scorer.UsageError`` is
cheap to catch."""

from __future__ import annotations

#: Documented status codes. ``ok`` means scored; everything else is a failure with a message.
STATUS_CODES = {
    "ok": "scored",
    "missing_url": "the row has no cover_url",
    "bad_row": "the input line could not be parsed: the error says which line, and why",
    "not_found": "local file does not exist",
    "unreadable": "local file could not be read",
    "bad_url": "cover_url is neither a local path nor an http(s) URL",
    "blocked_address": "the host resolves to a loopback, link-local or private address (see --allow-private-hosts)",
    "too_many_redirects": "more redirects than allowed, or a redirect loop",
    "dns_error": "the host name does not resolve",
    "fetch_error": "the connection failed or broke off (after retries)",
    "timeout": "the server did not answer, or did not finish answering, in time (after retries)",
    "http_404": "the server answered 404 (or 410)",
    "http_429": "the server kept answering 429 Too Many Requests (after retries)",
    "http_4xx": "the server answered another 4xx",
    "http_5xx": "the server answered 5xx (after retries)",
    "too_large": "the response or image exceeds the size limit",
    "not_an_image": "the bytes are not an image format we can read",
    "decode_error": "the image is damaged or truncated",
    "local_file": "a playlist entry for a local file: it has no Spotify album cover",
    "not_a_track": "a playlist entry that is not a music track (a podcast episode, or removed from Spotify)",
    "no_cover": "the album has no cover image",
    "local_file_refused": "a local path or file:// URL, refused by --no-local-files (SCORER_NO_LOCAL_FILES=1)",
}


class UsageError(ValueError):
    """A bad argument or input, found before any work starts. The message says what is wrong and what is
    accepted; it is the one the command line prints after ``error:``."""


class RunLocked(RuntimeError):
    """Another run holds the lock of a dataset output (exit code 75: try again later)."""


class RowError(Exception):
    """A per-row failure: becomes ``status=code`` and ``error=message`` in the output."""

    def __init__(self, code: str, message: str):
        assert code in STATUS_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
