"""``scorer similar``: covers like these, from a scored output with embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scorer.cli.options import (
    AllowPrivateOpt,
    CacheOpt,
    CacheSizeOpt,
    ModelOpt,
    NoLocalOpt,
    RetriesOpt,
    TimeoutOpt,
    fail,
)

#: the index columns the table shows after rank and similarity, those the index has, in this order
SHOWN = ("id", "artist", "title", "album", "genre", "label", "cover_url")


def similar(
    queries: Annotated[list[str], typer.Argument(
        help="Covers (http(s) URLs or local paths) or values of the index's id column; a text that is an id is "
             "taken as one (write a file of that name as ./NAME).", show_default=False)],
    index: Annotated[str, typer.Option(
        "--index", "-i", help="What scoring wrote with --embeddings: a .parquet file or a dataset output folder.",
        show_default=False)],
    top: Annotated[int, typer.Option("--top", "-k", help="Rows per query, most similar first.")] = 5,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the rows to Parquet.")] = None,
    model: ModelOpt = None,
    timeout: TimeoutOpt = 60.0,
    retries: RetriesOpt = 3,
    cache: CacheOpt = True,
    cache_max_size: CacheSizeOpt = None,
    allow_private_hosts: AllowPrivateOpt = False,
    no_local_files: NoLocalOpt = False,
    json_rows: Annotated[bool, typer.Option("--json", help="Print the rows as JSON, one object a line.")] = False,
) -> None:
    """Find the rows of a scored output whose covers are most like each query's (cosine similarity of the
    network's features; score the index with --embeddings first).

    Similarity 1 is the same cover; see the README ("Covers like these") for the threshold of a near-duplicate.
    A query that cannot be fetched or read is one row with its status.
    """
    from scorer import api
    from scorer.errors import UsageError

    try:
        found = api.similar(queries, index=index, top=top, model=model, out=out, timeout=timeout, retries=retries,
                            cache=cache, cache_max_size=cache_max_size, allow_private_hosts=allow_private_hosts,
                            local_files=not no_local_files)
    except UsageError as e:
        fail(e.cli_message)
    if json_rows:
        typer.echo(found.to_json(orient="records", lines=True, date_format="iso").rstrip("\n"))
        return
    print_similar(found, out)


def print_similar(found, out: Path | None) -> None:
    """One table per query: rank, similarity and the index row's telling columns; a failed query's status."""
    from rich.console import Console
    from rich.table import Table

    c = Console(highlight=False, soft_wrap=True)
    shown = [s for s in SHOWN if s in found.columns]
    t = None
    for r in found.itertuples(index=False):
        if (r.status != "ok" or r.rank == 1) and t is not None:  # the previous query's table is complete
            c.print(t)
            t = None
        if r.status != "ok":
            c.print(f"[bold]{r.query}[/]: [red]{r.status}[/] {r.error}")
            continue
        if t is None:  # a query's first row (the same query twice gives two tables)
            c.print(f"[bold]{r.query}[/]")
            t = Table("rank", "similarity", *shown, box=None)
        t.add_row(str(r.rank), f"{r.similarity:.3f}", *(_text(getattr(r, s)) for s in shown))
    if t is not None:
        c.print(t)
    s = found.attrs["scorer"]["summary"]
    failed = ", ".join(f"{k} {n}" for k, n in s["failed"].items())
    queries = f"{s['queries']} quer{'y' if s['queries'] == 1 else 'ies'}"
    c.print(f"{queries} · {s['found']} found" + (f" · {failed}" if failed else "")
            + f" · {s['searched_rows']} rows searched")
    if out is not None:
        c.print(f"wrote {out}")


def _text(value) -> str:
    import math

    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
