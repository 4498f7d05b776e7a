"""``scorer dataset``: build labelled cover sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from scorer.cli.options import AllowPrivateOpt, CacheOpt, CacheSizeOpt, JsonOpt, TimeoutOpt, fail

dataset_app = typer.Typer(help="Build a labelled cover set to train and evaluate models on.", no_args_is_help=True)


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
    from scorer.datasets.musicbrainz import BuildInterrupted
    from scorer.errors import UsageError

    summary, stopped, code = None, None, 0
    try:
        summary = api.dataset_musicbrainz(genre, out, contact=contact, per_genre=per_genre, per_artist=per_artist,
                                          interval=interval, timeout=timeout, cache=cache,
                                          cache_max_size=cache_max_size, allow_private_hosts=allow_private_hosts)
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
        from scorer.cli.console import print_build

        print_build(summary, stopped)
    if code:
        raise typer.Exit(code)
