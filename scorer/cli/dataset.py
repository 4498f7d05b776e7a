"""``scorer dataset``: build labelled cover sets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from scorer.cli.options import AllowPrivateOpt, CacheOpt, CacheSizeOpt, JsonOpt, TimeoutOpt, fail

dataset_app = typer.Typer(help="Build a labelled cover set to train and evaluate models on.", no_args_is_help=True)


def _build(build: Callable[[], Any], out: Path, json_summary: bool, show: Callable[[Any, str | None], None]) -> None:
    """Run a labelled-set build and print its summary (``--json``: as JSON). A bad argument is one line (exit 2);
    a build a service stopped early prints what it got and exits 1; Ctrl-C keeps what was got (exit 130)."""
    from scorer.datasets.journal import BuildInterrupted
    from scorer.errors import UsageError

    summary, stopped, code = None, None, 0
    try:
        summary = build()
    except UsageError as e:
        fail(e.cli_message)
    except BuildInterrupted as e:
        summary, stopped, code = e.summary, str(e), 1
    except KeyboardInterrupt:
        fail(f"interrupted; what was got is kept in {out}: run the same command again to go on", code=130)
    assert summary is not None  # fail() and the interruption above leave no other way here
    if json_summary:
        typer.echo(json.dumps({**summary.as_dict(), **({"stopped": stopped} if stopped else {})}))
    else:
        show(summary, stopped)
    if code:
        raise typer.Exit(code)


@dataset_app.command("musicbrainz")
def dataset_musicbrainz(
    genre: Annotated[list[str], typer.Option(
        "--genre", "-g", help="A MusicBrainz genre tag (indie, rock, hip hop, ...); repeat it, or separate by "
                              "commas.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the set: one sub-folder per genre and "
                                                          "labels.csv. Run again to go on where it stopped.")],
    contact: Annotated[str, typer.Option(
        envvar="SCORER_CONTACT", help="Your e-mail address or a URL: MusicBrainz requires a contact in every "
                                      "request's User-Agent.", show_default=False)],
    per_genre: Annotated[int, typer.Option(help="Albums per genre.", min=1)] = 500,
    per_artist: Annotated[int, typer.Option(help="At most this many albums of one artist per genre.", min=1)] = 5,
    interval: Annotated[float, typer.Option(
        help="Seconds between requests to each service: MusicBrainz allows one per second; less only for a mirror "
             "of your own (SCORER_MUSICBRAINZ_URL, SCORER_COVERART_URL).", min=0.0)] = 1.0,
    timeout: TimeoutOpt = 60.0,
    cache: CacheOpt = True,
    cache_max_size: CacheSizeOpt = None,
    allow_private_hosts: AllowPrivateOpt = False,
    json_summary: JsonOpt = False,
) -> None:
    """Build a labelled cover set from MusicBrainz genre tags and Cover Art Archive covers.

    Albums tagged with each genre, balanced per genre; one tagged with two of the genres is left out.
    Front covers at 250 px, one request per second. Run it again to go on where it stopped.
    The covers are copyrighted: use the set for your own models, and do not publish it.
    """
    from scorer import api
    from scorer.cli.console import print_build

    _build(lambda: api.dataset_musicbrainz(genre, out, contact=contact, per_genre=per_genre, per_artist=per_artist,
                                           interval=interval, timeout=timeout, cache=cache,
                                           cache_max_size=cache_max_size, allow_private_hosts=allow_private_hosts),
           out, json_summary, print_build)


@dataset_app.command("playlists")
def dataset_playlists(
    label: Annotated[list[str], typer.Option(
        "--label", "-l", help="LABEL=PLAYLIST: a label (letters, digits, - and _) and a Deezer playlist link; repeat "
                              "it, one label may name several playlists (--label like=A --label like=B --label "
                              "skip=C).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the set: one sub-folder per label and "
                                                          "labels.csv. Run again to go on where it stopped.")],
    timeout: TimeoutOpt = 60.0,
    cache: CacheOpt = True,
    cache_max_size: CacheSizeOpt = None,
    allow_private_hosts: AllowPrivateOpt = False,
    json_summary: JsonOpt = False,
) -> None:
    """Build a labelled cover set from Deezer playlists: each playlist's albums under its label.

    One row per distinct album and its 250 px cover; an album under two labels is left out.
    --label like=… --label skip=… teaches a taste: scorer train DIR --out MODEL --group-by artist_id,
    then scorer playlist LINK --model MODEL --keep like. Run it again to go on where it stopped.
    Spotify playlists are refused: Spotify's Developer Policy forbids training models on its content.
    The covers are copyrighted: use the set for your own models, and do not publish it.
    """
    from scorer import api

    _build(lambda: api.dataset_playlists(label, out, timeout=timeout, cache=cache, cache_max_size=cache_max_size,
                                         allow_private_hosts=allow_private_hosts),
           out, json_summary, _print_playlists)


def _print_playlists(summary, stopped: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console(highlight=False, soft_wrap=True)
    for p in summary.playlists:
        c.print(f"{p['label']}: {p['name'] or p['id']}{' by ' + p['owner'] if p['owner'] else ''} · {p['tracks']} "
                f"tracks, {p['albums']} albums with a cover")
    t = Table("label", "covers", "new", "two labels", "repeats", "no cover", "no album", "unusable", "failed",
              box=None)
    for name, g in summary.labels.items():
        t.add_row(name, f"{g.covers}/{g.wanted}", str(g.new), str(g.two_labels), str(g.repeats), str(g.no_cover),
                  str(g.not_album), str(g.unusable), f"[red]{g.failed}[/]" if g.failed else "0")
    c.print(t)
    c.print("left out: albums under two labels · tracks repeating an album · tracks whose album has no cover · "
            "entries that are no album's track")
    c.print(f"{summary.read} playlists read from Deezer, {summary.covers_asked} covers asked for, "
            f"{summary.seconds:.0f}s")
    if stopped:
        c.print(f"[red]stopped:[/] {stopped}")
    elif any(g.failed for g in summary.labels.values()):
        c.print("covers that failed for a passing reason are asked for again by the next run of the same command")
    c.print(f"wrote {summary.labels_csv}; next: scorer train {summary.out} --out MODEL --group-by artist_id")


@dataset_app.command("deezer")
def dataset_deezer(
    genre: Annotated[list[str], typer.Option(
        "--genre", "-g", help="A Deezer genre: its name in any case or spacing (Alternative, rock, 'rap/hip hop', "
                              "r&b) or its id (85); repeat it. A name Deezer does not have lists those it has.",
        show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the set: one sub-folder per genre and "
                                                          "labels.csv. Run again to go on where it stopped.")],
    per_genre: Annotated[int, typer.Option(help="Albums per genre.")] = 500,
    per_artist: Annotated[int, typer.Option(help="At most this many albums of one artist per genre.")] = 5,
    timeout: TimeoutOpt = 60.0,
    cache: CacheOpt = True,
    cache_max_size: CacheSizeOpt = None,
    allow_private_hosts: AllowPrivateOpt = False,
    json_summary: JsonOpt = False,
) -> None:
    """Build a labelled cover set from Deezer's genres: albums whose own genre is each one, 250 px covers.

    Albums of the genre's artists and of its chart's, balanced per genre; singles, EPs, compilations, albums
    of another genre and albums that another requested genre's chart lists are left out and counted. Deezer's
    quota (about 50 requests per 5 s) is waited out; SCORER_DEEZER_API_URL points at another API base. Run it
    again to go on where it stopped. Deezer's API terms allow non-commercial use only and the covers are
    copyrighted: use the set for your own models, and do not publish it.
    """
    from scorer import api

    _build(lambda: api.dataset_deezer(genre, out, per_genre=per_genre, per_artist=per_artist, timeout=timeout,
                                      cache=cache, cache_max_size=cache_max_size,
                                      allow_private_hosts=allow_private_hosts),
           out, json_summary, _print_deezer)


def _print_deezer(summary, stopped: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console(highlight=False, soft_wrap=True)
    t = Table("genre", "covers", "new", "artists", "not an album", "other genre", "two genres", "no cover",
              "artist cap", "failed", box=None)
    for name, g in summary.genres.items():
        short = "[yellow]" if g.covers < g.wanted else ""
        t.add_row(f"{name} ({g.name}, {g.id})", f"{short}{g.covers}/{g.wanted}", str(g.new), str(g.artists),
                  str(g.not_album), str(g.other_genre), str(g.two_genres), str(g.no_cover), str(g.artist_cap),
                  f"[red]{g.failed}[/]" if g.failed else "0")
    c.print(t)
    c.print("left out: singles, EPs and compilations · albums whose own genre is another · albums another of these "
            f"genres' charts lists · albums without a cover · past {summary.per_artist} albums of one artist")
    for name, g in summary.genres.items():
        if g.covers < g.wanted and g.exhausted:
            c.print(f"[yellow]{name}[/]: the {g.artists} artists Deezer lists for {g.name} and its chart have no more "
                    "albums of the genre with a usable cover")
    c.print(f"{summary.requests} Deezer API requests, {summary.quota_waits} quota answers waited out, "
            f"{summary.covers_asked} covers asked for, {summary.seconds:.0f}s")
    if stopped:
        c.print(f"[red]stopped:[/] {stopped}")
    elif any(g.failed for g in summary.genres.values()):
        c.print("covers that failed for a passing reason are asked for again by the next run of the same command")
    c.print(f"wrote {summary.labels}; next: scorer train {summary.out} --out MODEL --group-by artist_id")
