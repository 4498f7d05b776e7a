"""The ``scorer`` command: a thin shell over :mod:`scorer.api` (arguments in, one line per fault out).

``commands`` holds the typer app, ``console`` what it prints, ``faults`` the exit codes, ``demo`` the demo.
"""

from scorer.cli.commands import app, main

__all__ = ["app", "main"]
