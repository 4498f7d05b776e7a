"""``scorer cache``: what the on-disk cache holds; prune it, clear it."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from scorer.cli.options import JsonOpt, fail

cache_app = typer.Typer(help="The on-disk cache: covers, training features, fine-tuning state.",
                        no_args_is_help=True)


@cache_app.command("info")
def cache_info(json_summary: JsonOpt = False) -> None:
    """Where the cache is, and what each part of it takes on the disk (as du counts: whole blocks, folders)."""
    from scorer.api import cache_info as info

    report = info()
    if json_summary:
        typer.echo(json.dumps(report))
        return
    from scorer.cli.console import print_cache

    print_cache(report)


@cache_app.command("prune")
def cache_prune(
    max_size: Annotated[Optional[str], typer.Option(
        "--max-size", help="Prune the covers to this size on the disk [default: the bound, $SCORER_CACHE_MAX_SIZE "
                           "or 10GB].",
        show_default=False)] = None,
) -> None:
    """Delete the least recently used covers until the cover cache is within its bound."""
    from scorer.api import prune_cache
    from scorer.errors import UsageError

    try:
        done = prune_cache(max_size)
    except UsageError as e:
        fail(e.cli_message)
    typer.echo(f"pruned {done['files']} files ({_size(done['bytes'])} on disk); {_size(done['left_bytes'])} of covers "
               f"left on disk in {done['root']} (bound {_size(done['max_bytes'])})")


@cache_app.command("clear")
def cache_clear(
    everything: Annotated[bool, typer.Option(
        "--all", help="Also the checkpoints and saved splits that let fine-tuning runs resume.")] = False,
) -> None:
    """Delete the cached covers and training features (they are fetched and computed again when needed)."""
    from scorer.api import clear_cache

    gone = clear_cache(everything=everything)
    typer.echo(f"deleted {gone['files']} files ({_size(gone['bytes'])} on disk) from {gone['root']}")


def _size(n: int) -> str:
    for unit, scale in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
