"""The ``scorer`` command line. Heavy modules are imported inside the commands that use them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from scorer.cli.cache import cache_app
from scorer.cli.dataset import dataset_app
from scorer.cli.options import (
    AllowPrivateOpt,
    AlsoOpt,
    BatchOpt,
    CacheOpt,
    CacheSizeOpt,
    ConcurrencyOpt,
    EmbeddingsOpt,
    HeadOpt,
    JsonOpt,
    KeepOpt,
    MinProbOpt,
    ModelOpt,
    NoLocalOpt,
    PerHostOpt,
    PrecisionOpt,
    RetriesOpt,
    TimeoutOpt,
    TtaOpt,
    WorkersOpt,
    fail,
    notes_on_stderr,
)
from scorer.cli.similar import similar
from scorer.cli.training import evaluate, report, train


class _Commands(TyperGroup):
    """Runs a command with SIGTERM turned into an exception (so cleanup runs as for Ctrl-C), and every
    fault a user can meet said in one line with its exit code (:mod:`scorer.cli.faults`); a bug, or any
    error with --debug, keeps its traceback."""

    def invoke(self, ctx):
        import signal
        import threading

        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            with notes_on_stderr():
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort, SystemExit, GeneratorExit):
            raise
        except BaseException as e:
            from scorer.cli.faults import explain

            found = explain(e)  # None for click's own exceptions too: click reports those itself
            if found is None or (ctx.obj or {}).get("debug"):
                raise
            message, code = found
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame) -> None:
    from scorer.errors import Terminated

    raise Terminated()


app = typer.Typer(
    cls=_Commands,
    help="Predict the music genre of albums from their cover art; keep the genres you like.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option(
        "--debug", envvar="SCORER_DEBUG", help="Show the Python traceback of every error, not a one-line message.")
    ] = False,
) -> None:
    """Predict the music genre of albums from their cover art; keep the genres you like.

    Exit codes: see the README ("Exit codes").
    """
    ctx.ensure_object(dict)["debug"] = debug

def _file_command(name: str, input_help: str, doc: str) -> None:
    """``scorer catalog`` and ``scorer links``: the same options, different readers."""

    def command(
        input: Path,
        out: Annotated[str, typer.Option(
            "--out", "-o", help="A .parquet file, or a folder/URI (s3://…) for a sharded, incremental dataset.")],
        keep: KeepOpt = None,
        head: HeadOpt = None,
        min_prob: MinProbOpt = None,
        model: ModelOpt = None,
        also: AlsoOpt = None,
        embeddings: EmbeddingsOpt = False,
        batch_size: BatchOpt = None,
        precision: PrecisionOpt = None,
        tta: TtaOpt = None,
        workers: WorkersOpt = 4,
        concurrency: ConcurrencyOpt = 64,
        per_host: PerHostOpt = 16,
        timeout: TimeoutOpt = 60.0,
        retries: RetriesOpt = 3,
        cache: CacheOpt = True,
        cache_max_size: CacheSizeOpt = None,
        allow_private_hosts: AllowPrivateOpt = False,
        no_local_files: NoLocalOpt = False,
        shard_rows: Annotated[int, typer.Option(help="Rows per part file in dataset mode.", min=1)] = 10_000,
        rescore: Annotated[bool, typer.Option(
            "--rescore", help="Dataset mode: score every row again instead of carrying unchanged ones.")] = False,
        engine: Annotated[str, typer.Option(
            help="Dataset mode: local (threads + asyncio, incremental, resumable) or ray (a Ray cluster).")] = "local",
        max_failure_rate: Annotated[Optional[float], typer.Option(
            help="Exit with code 3 when more than this fraction of rows failed (0-1).", min=0.0, max=1.0)] = None,
        encoding: Annotated[Optional[str], typer.Option(
            help="Text encoding of a CSV, JSONL or link file, e.g. cp1252 [default: UTF-8, or what a byte-order "
                 "mark says, or cp1252 when detected; see the README].", show_default=False)] = None,
        json_summary: JsonOpt = False,
    ) -> None:
        from scorer import api
        from scorer.errors import RunLocked, UsageError

        score_file = api.score_catalog if name == "catalog" else api.score_links
        if name != "catalog" and engine != "local":  # a link file is scored into one file, by the local engine
            fail("--engine ray writes a dataset; a link file is scored into one .parquet file by the local engine"
                 if engine == "ray" else f"--engine {engine}: use local or ray")
        extra = dict(shard_rows=shard_rows, rescore=rescore, engine=engine) if name == "catalog" else {}
        try:
            result = score_file(
                input, out, keep=keep, head=head, min_prob=min_prob, model=model, also=also or None,
                embeddings=embeddings, encoding=encoding,
                progress=None, batch_size=batch_size, precision=precision, tta=tta, workers=workers,
                concurrency=concurrency, per_host=per_host, timeout=timeout, retries=retries, cache=cache,
                cache_max_size=cache_max_size, allow_private_hosts=allow_private_hosts,
                local_files=not no_local_files, **extra)
        except (UsageError, FileNotFoundError) as e:
            fail(e.cli_message if isinstance(e, UsageError) else str(e))
        except RunLocked as e:
            fail(str(e), code=75)  # EX_TEMPFAIL: cron may simply try again later
        summary = result.summary
        from scorer.cli.console import print_summary

        if json_summary:
            typer.echo(json.dumps(result.report))
        else:
            print_summary(summary, out, extra=result.report if result.incremental else None)
        if max_failure_rate is not None and summary.failure_rate > max_failure_rate:
            fail(f"{summary.failure_rate:.1%} of rows failed, over --max-failure-rate {max_failure_rate:g}", code=3)

    command.__doc__ = doc
    # set after the fact: annotations are evaluated in module scope, where input_help does not exist
    command.__annotations__["input"] = Annotated[Path, typer.Argument(help=input_help)]
    app.command(name)(command)


_file_command("catalog", "CSV, JSONL or Parquet with a cover_url column (URL or local path).",
              "Score every row of a catalog of covers and write one output row per input row.")
_file_command("links", "Link file: <cover URL><TAB><genre>/<album_id>.jpg per line (Bandcamp study).",
              "Score every cover of a link file; the file's genre is kept as the `label` column.")


@app.command()
def playlist(
    playlist: Annotated[str, typer.Argument(
        help="Spotify: playlist ID, spotify:playlist:ID or https://open.spotify.com/playlist/ID. Deezer: "
             "https://www.deezer.com/[xx/]playlist/ID or deezer:playlist:ID.")],
    keep: KeepOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the rows to Parquet.")] = None,
    head: HeadOpt = None,
    min_prob: MinProbOpt = None,
    model: ModelOpt = None,
    also: AlsoOpt = None,
    embeddings: EmbeddingsOpt = False,
    user: Annotated[bool, typer.Option(
        "--user", help="Sign in as yourself (PKCE) to read private playlists; token cached user-only.")] = False,
    save_playlist: Annotated[Optional[str], typer.Option(
        "--save-playlist", help="Create a private playlist of the kept tracks with this name (signs you in).")] = None,
    token_cache: Annotated[Optional[Path], typer.Option(
        help="Where the signed-in token is kept (default ~/.config/scorer/spotify-token.json).")] = None,
    batch_size: BatchOpt = None,
    precision: PrecisionOpt = None,
    tta: TtaOpt = None,
    workers: WorkersOpt = 4,
    concurrency: ConcurrencyOpt = 64,
    per_host: PerHostOpt = 16,
    timeout: TimeoutOpt = 60.0,
    retries: RetriesOpt = 3,
    cache: CacheOpt = True,
    cache_max_size: CacheSizeOpt = None,
    allow_private_hosts: AllowPrivateOpt = False,
    json_summary: JsonOpt = False,
) -> None:
    """Score a Spotify or Deezer playlist by its album covers and keep the genres you like.

    Spotify: the app comes from SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET (developer.spotify.com); apps
    created today read only playlists you own or collaborate on, signed in with --user.
    Deezer: public playlists, no credentials.
    """
    from scorer import api
    from scorer.errors import UsageError
    from scorer.services.deezer import DeezerAccessError
    from scorer.services.spotify import SpotifyAccessError

    try:
        scored = api.score_playlist(
            playlist, keep=keep, head=head, min_prob=min_prob, model=model, also=also or None, embeddings=embeddings,
            out=out, user=user,
            save_playlist=save_playlist, token_cache=token_cache, progress=None, batch_size=batch_size,
            precision=precision, tta=tta, workers=workers, concurrency=concurrency, per_host=per_host,
            timeout=timeout, retries=retries, cache=cache, cache_max_size=cache_max_size,
            allow_private_hosts=allow_private_hosts)
    except UsageError as e:
        fail(e.cli_message)
    except (SpotifyAccessError, DeezerAccessError) as e:
        fail(str(e), code=1)
    run = scored.attrs["scorer"]
    if json_summary:
        typer.echo(json.dumps({**run["summary"], "playlist": run["playlist"],
                               "distinct_covers": run["distinct_covers"]}))
    else:
        from scorer.cli.console import print_playlist

        print_playlist(scored, out)


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo covers, catalog and output.")] = Path(
        "scorer-demo"),
    keep: KeepOpt = "rock,pop",
) -> None:
    """Score a small catalog of covers that scorer draws itself, with the shipped model."""
    from scorer.cli.demo import run_demo
    from scorer.errors import UsageError

    try:
        run_demo(out, keep)
    except UsageError as e:
        fail(e.cli_message)


def info(model: ModelOpt = None) -> None:
    """Show the model's genres, heads and cross-validated figures."""
    from scorer.api import load_model
    from scorer.errors import UsageError

    try:
        m = load_model(model)
    except UsageError as e:
        fail(e.cli_message)
    from scorer.cli.console import print_model

    print_model(m)


# in the order `scorer --help` lists them
app.add_typer(dataset_app, name="dataset")
app.add_typer(cache_app, name="cache")
for command in (demo, evaluate, train, report, info, similar):
    app.command()(command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
