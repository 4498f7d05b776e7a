"""Faults a user can meet, as one line that says what happened and what to do, and an exit code.

The CLI sends every exception through :func:`explain`; what it does not recognise is a bug and
keeps its traceback. ``--debug`` (or ``SCORER_DEBUG=1``) shows the traceback for everything.
"""

from __future__ import annotations

from scorer.errors import (
    EXTRAS,
    OUTPUT_FAULTS,
    Fault,
    RunLocked,
    ServiceError,
    Terminated,
    UsageError,
    errno_of,
)

_STOPPED = "temporary files removed (a dataset run goes on where it stopped when run again)"


#: errors of the family said as their message, with their exit code
_CODES = ((UsageError, 2), (RunLocked, 75), (ServiceError, 1))


def explain(e: BaseException) -> tuple[str, int] | None:
    """``(message, exit code)`` for a fault a user can meet; None for a bug."""
    if isinstance(e, (KeyboardInterrupt, Terminated)):
        return (f"interrupted; {_STOPPED}", 130) if isinstance(e, KeyboardInterrupt) else \
            (f"stopped by SIGTERM; {_STOPPED}", 143)
    if isinstance(e, Fault):
        return str(e), e.code
    for kind, code in _CODES:
        if isinstance(e, kind):
            return (e.cli_message if isinstance(e, UsageError) else str(e)), code
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


def _os_error(e: OSError) -> tuple[str, int] | None:
    text = str(e)
    # Python names the file; pyarrow puts it in its message instead
    what = f": {e.filename}" if e.filename else f" ({text.splitlines()[0][:300]})" if text else ""
    code = errno_of(e)
    exit_code = OUTPUT_FAULTS.get(code) if code is not None else None
    if exit_code is None:
        return None
    return _OUTPUT_MESSAGES[exit_code].format(what=what), exit_code


#: what to say for each exit code of :data:`scorer.errors.OUTPUT_FAULTS`
_OUTPUT_MESSAGES = {
    74: ("no space left on the device{what}; free some, or write --out elsewhere (a file being written was "
         "removed; an earlier output is left as it was)"),
    77: "permission denied{what}; check who owns it, or choose another path",
    73: "read-only file system{what}; write --out elsewhere",
}
