"""The ``scorer`` command line. Heavy modules are imported inside the commands that use them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup


class _Commands(TyperGroup):
    """Runs a command with SIGTERM turned into an exception (so cleanup runs as for Ctrl-C), and every
    fault a user can meet said in one line with its exit code (:mod:`scorer.faults`); a bug, or any
    error with --debug, keeps its traceback."""

    def invoke(self, ctx):
        import signal
        import threading

        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, SystemExit, GeneratorExit):
            raise
        except BaseException as e:
            from scorer.faults import explain

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
    from scorer.faults import Terminated

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

ModelOpt = Annotated[Optional[Path], typer.Option("--model", help="Model directory (default: the shipped model).")]
FeaturizerOpt = Annotated[Optional[Path], typer.Option(
    "--featurizer", help="CNN featurizer ONNX file (default: the shipped EfficientNet-Lite0).")]
HeadOpt = Annotated[Optional[str], typer.Option("--head", help="Head to score with (default: the model's best by CV).")]
KeepOpt = Annotated[Optional[str], typer.Option("--keep", help="Comma-separated genres to keep, e.g. rock,pop.")]
MinProbOpt = Annotated[Optional[float], typer.Option(
    "--min-prob", help="Keep rows whose kept genres' summed probability reaches this (0-1), instead of top-1.")]


AllowPrivateOpt = Annotated[bool, typer.Option(
    "--allow-private-hosts",
    help="Allow cover URLs on loopback and private networks (refused by default; link-local never).")]
ConcurrencyOpt = Annotated[int, typer.Option(help="HTTP requests in flight.", min=1, max=1024)]
PerHostOpt = Annotated[int, typer.Option(help="Connections to any one host.", min=1, max=1024)]
TimeoutOpt = Annotated[float, typer.Option(
    "--timeout", help="Seconds one request may take in all (connect and read stalls time out sooner).", min=0.1)]
RetriesOpt = Annotated[int, typer.Option(help="Retries for connection errors, timeouts, 5xx and 429.", min=0, max=20)]
NoLocalOpt = Annotated[bool, typer.Option(
    "--no-local-files", envvar="SCORER_NO_LOCAL_FILES",
    help="Refuse local paths and file:// URLs in the input (status local_file_refused): for catalogs from others, "
         "which could otherwise learn which files exist here.")]
CacheOpt = Annotated[bool, typer.Option(
    "--cache/--no-cache", help="Keep fetched covers in the on-disk cache ($SCORER_CACHE_DIR/covers).")]
CacheSizeOpt = Annotated[Optional[str], typer.Option(
    "--cache-max-size", help="Bound of the cover cache, e.g. 20GB; the least recently used covers go first "
                             "[default: $SCORER_CACHE_MAX_SIZE or 10GB].", show_default=False)]


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


BatchOpt = Annotated[Optional[int], typer.Option(
    help="Covers per featurizer batch [default: 16 on CPU, 128 on a GPU].", min=1, max=1024, show_default=False)]
PrecisionOpt = Annotated[Optional[str], typer.Option(
    help="Featurizer precision: fp32 or int8 [default: the model's choice, see `scorer info`].",
    show_default=False)]
TtaOpt = Annotated[Optional[str], typer.Option(
    help="Test-time augmentation: flip (each cover's features averaged with its mirror image's: the network runs "
         "twice per cover) or none [default: the model's choice, see `scorer info`].", show_default=False)]
WorkersOpt = Annotated[int, typer.Option(help="Decode threads.", min=1, max=256)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")]
FinetuneOpt = Annotated[bool, typer.Option(
    "--finetune", help="Fine-tune the pretrained CNN on the labelled covers first (torch: the 'export' extra).")]
EpochsOpt = Annotated[int, typer.Option(help="--finetune: epochs.", min=1, max=100)]
ArchOpt = Annotated[str, typer.Option(help="--finetune: the pretrained network, lite0, lite1 or lite2.")]
TrainSizeOpt = Annotated[int, typer.Option(
    help="--finetune: pixels of the training crops (the network scores at 224 either way; 160 trains about 3x as "
         "fast on a CPU).", min=96, max=256)]
UnknownGenresOpt = Annotated[bool, typer.Option(
    "--unknown-genres", help="Also leave each genre out of training in turn and report how sure the model is of "
                             "its covers (one more fit, or fine-tuning, per genre).")]
FreezeOpt = Annotated[int, typer.Option(
    help="--finetune: the stem and this many first blocks keep their ImageNet weights (0: train all).")]
AugmentOpt = Annotated[str, typer.Option(
    help="--finetune: store (crops, flips, and JPEG re-compression, rescaling and colour jitter that erase which "
         "store a cover came from) or basic (crops and flips).")]
KeepCheckpointsOpt = Annotated[bool, typer.Option(
    "--keep-checkpoints", help="--finetune: keep each network's checkpoint in the cache after its export "
                               "(by default it is deleted then; it only serves to resume a stopped run).")]
WeightingOpt = Annotated[str, typer.Option(
    help="--finetune: balanced (every genre weighs the same in the loss) or none (every cover does).")]


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
        extra = dict(shard_rows=shard_rows, rescore=rescore) if name == "catalog" else {}
        try:
            result = score_file(
                input, out, keep=keep, head=head, min_prob=min_prob, model=model, encoding=encoding, log=_log,
                progress=None, batch_size=batch_size, precision=precision, tta=tta, workers=workers,
                concurrency=concurrency, per_host=per_host, timeout=timeout, retries=retries, cache=cache,
                cache_max_size=cache_max_size, allow_private_hosts=allow_private_hosts,
                no_local_files=no_local_files, engine=engine, **extra)
        except (UsageError, FileNotFoundError) as e:
            fail(str(e))
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
            playlist, keep=keep, head=head, min_prob=min_prob, model=model, out=out, user=user,
            save_playlist=save_playlist, token_cache=token_cache, progress=None, batch_size=batch_size,
            precision=precision, tta=tta, workers=workers, concurrency=concurrency, per_host=per_host,
            timeout=timeout, retries=retries, cache=cache, cache_max_size=cache_max_size,
            allow_private_hosts=allow_private_hosts)
    except UsageError as e:
        fail(str(e))
    except (SpotifyAccessError, DeezerAccessError) as e:
        fail(str(e), code=1)
    run = scored.attrs["scorer"]
    if json_summary:
        typer.echo(json.dumps({**run["summary"], "playlist": run["playlist"],
                               "distinct_covers": run["distinct_covers"]}))
    else:
        from scorer.cli.console import print_playlist

        print_playlist(scored, out)


dataset_app = typer.Typer(help="Build a labelled cover set to train and evaluate models on.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


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
                                          cache_max_size=cache_max_size, allow_private_hosts=allow_private_hosts,
                                          log=_log)
    except UsageError as e:
        fail(str(e))
    except BuildInterrupted as e:
        summary, stopped, code = e.summary, str(e), 1
    except KeyboardInterrupt:
        fail(f"interrupted; what was got is kept in {out}: run the same command again to go on", code=130)
    if json_summary:
        typer.echo(json.dumps({**summary.as_dict(), **({"stopped": stopped} if stopped else {})}))
    else:
        from scorer.cli.console import print_build

        print_build(summary, stopped)
    if code:
        raise typer.Exit(code)


cache_app = typer.Typer(help="The on-disk cache: covers, training features, fine-tuning state.",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def cache_info(json_summary: JsonOpt = False) -> None:
    """Where the cache is, and how big each part of it is."""
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
        "--max-size", help="Prune the covers to this size [default: the bound, $SCORER_CACHE_MAX_SIZE or 10GB].",
        show_default=False)] = None,
) -> None:
    """Delete the least recently used covers until the cover cache is within its bound."""
    from scorer.api import prune_cache
    from scorer.errors import UsageError

    try:
        done = prune_cache(max_size)
    except UsageError as e:
        fail(str(e))
    typer.echo(f"pruned {done['files']} files ({_size(done['bytes'])}); {_size(done['left_bytes'])} of covers left "
               f"in {done['root']} (bound {_size(done['max_bytes'])})")


@cache_app.command("clear")
def cache_clear(
    everything: Annotated[bool, typer.Option(
        "--all", help="Also the checkpoints and saved splits that let fine-tuning runs resume.")] = False,
) -> None:
    """Delete the cached covers and training features (they are fetched and computed again when needed)."""
    from scorer.api import clear_cache

    gone = clear_cache(everything=everything)
    typer.echo(f"deleted {gone['files']} files ({_size(gone['bytes'])}) from {gone['root']}")


def _size(n: int) -> str:
    for unit, scale in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


@app.command()
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
        fail(str(e))


DataArg = Annotated[list[Path], typer.Argument(
    help="Labelled covers: a folder with one sub-folder per genre (or a labels.csv), a CSV with path,genre, or a "
         "link file (.tsv) to fetch. Several (one per store, say) are read as one set, and figures are also given "
         "per input.", show_default=False)]
GroupByOpt = Annotated[Optional[str], typer.Option(
    help="CSV column (e.g. artist) whose groups never straddle folds; an empty value is unknown. Near-duplicate "
         "covers are always grouped.")]


@app.command()
def evaluate(
    data: DataArg,
    folds: Annotated[int, typer.Option(help="Number of stratified folds.", min=2, max=20)] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the fold split and the heads.")] = 0,
    featurizer: FeaturizerOpt = None,
    finetune: FinetuneOpt = False,
    epochs: EpochsOpt = 6,  # the shipped recipe (scorer.training.finetune.Recipe)
    arch: ArchOpt = "lite0",
    freeze_blocks: FreezeOpt = 0,
    augment: AugmentOpt = "store",
    class_weighting: WeightingOpt = "balanced",
    train_size: TrainSizeOpt = 160,  # api.TRAIN_SIZE
    group_by: GroupByOpt = None,
    unknown_genres: UnknownGenresOpt = False,
    keep_checkpoints: KeepCheckpointsOpt = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    concurrency: ConcurrencyOpt = 64,
    per_host: PerHostOpt = 16,
    timeout: TimeoutOpt = 60.0,
    retries: RetriesOpt = 3,
    allow_private_hosts: AllowPrivateOpt = False,
) -> None:
    """Cross-validate every featurizer+head pair (and their ensemble) on labelled covers.

    With --finetune, the CNN is fine-tuned inside each fold, on that fold's training covers only.
    """
    from scorer import api
    from scorer.errors import UsageError

    try:
        result = api.evaluate(data, folds=folds, seed=seed, featurizer=featurizer, finetune=finetune, epochs=epochs,
                              arch=arch, freeze_blocks=freeze_blocks, augment=augment,
                              class_weighting=class_weighting, train_size=train_size, group_by=group_by,
                              unknown_genres=unknown_genres, keep_checkpoints=keep_checkpoints,
                              log=_log if finetune or not json_out else None, concurrency=concurrency,
                              per_host=per_host, timeout=timeout, retries=retries,
                              allow_private_hosts=allow_private_hosts)
    except UsageError as e:
        fail(str(e))
    if json_out:
        typer.echo(json.dumps(result))
    else:
        from scorer.cli.console import print_evaluation

        print_evaluation(result)


@app.command()
def train(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to create.")],
    folds: Annotated[int, typer.Option(help="CV folds used to pick the default head (0: skip, use the ensemble).",
                                       min=0, max=20)] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the folds and the heads.")] = 0,
    name: Annotated[str, typer.Option(help="Model name recorded in the manifest.")] = "custom",
    featurizer: FeaturizerOpt = None,
    finetune: FinetuneOpt = False,
    epochs: EpochsOpt = 6,  # the shipped recipe (scorer.training.finetune.Recipe)
    arch: ArchOpt = "lite0",
    freeze_blocks: FreezeOpt = 0,
    augment: AugmentOpt = "store",
    class_weighting: WeightingOpt = "balanced",
    train_size: TrainSizeOpt = 160,  # api.TRAIN_SIZE
    group_by: GroupByOpt = None,
    keep_checkpoints: KeepCheckpointsOpt = False,
    concurrency: ConcurrencyOpt = 64,
    per_host: PerHostOpt = 16,
    timeout: TimeoutOpt = 60.0,
    retries: RetriesOpt = 3,
    allow_private_hosts: AllowPrivateOpt = False,
) -> None:
    """Train kNN, XGBoost and MLP heads on labelled covers and write a model directory.

    With --finetune, the CNN is fine-tuned on the covers first, exported to ONNX into the model,
    and its own genre layer ships as the default head, `cnn-network`.
    """
    from scorer import api
    from scorer.errors import UsageError

    try:
        manifest = api.train(data, out, folds=folds, seed=seed, name=name, featurizer=featurizer, finetune=finetune,
                             epochs=epochs, arch=arch, freeze_blocks=freeze_blocks, augment=augment,
                             class_weighting=class_weighting, train_size=train_size, group_by=group_by,
                             keep_checkpoints=keep_checkpoints,
                             log=_log, concurrency=concurrency, per_host=per_host, timeout=timeout, retries=retries,
                             allow_private_hosts=allow_private_hosts)
    except UsageError as e:
        fail(str(e))
    typer.echo(f"wrote {out} (version {manifest['version']}, default head {manifest['default_head']})")


@app.command()
def report(
    input: Annotated[Path, typer.Argument(
        help="Labelled covers (folder per genre, CSV with path,genre, or link file), or a scored Parquet "
             "file or dataset folder from scorer catalog/links/playlist.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for index.html and its images.")],
    folds: Annotated[int, typer.Option(help="Labelled: cross-validation folds.", min=2, max=20)] = 5,
    seed: Annotated[int, typer.Option(help="Seed for every sample, the folds and the heads.")] = 0,
    heads: Annotated[Optional[str], typer.Option(
        help="Labelled: head kinds to cross-validate, e.g. knn,mlp [default: knn,xgboost,mlp,logreg].")] = None,
    per_genre: Annotated[Optional[int], typer.Option(
        help="Labelled: use at most this many covers per genre (seeded sample) for a quick report.", min=2)] = None,
    grid: Annotated[int, typer.Option(help="Labelled: covers per genre in the sight-check grid.", min=1,
                                      max=200)] = 12,
    activations: Annotated[int, typer.Option(
        help="Labelled: covers with activation maps, for correct and for wrong predictions each.", min=0,
        max=100)] = 6,
    activation_head: Annotated[Optional[str], typer.Option(
        help="Labelled: featurizer-head pair for the activation maps, e.g. cnn-mlp [default: best by CV].")] = None,
    projection: Annotated[str, typer.Option(help="Labelled: embedding map projection: pca, tsne or umap.")] = "pca",
    evaluation: Annotated[Optional[Path], typer.Option(
        help="Labelled: show this `scorer evaluate --json` result instead of cross-validating again.")] = None,
    featurizer: FeaturizerOpt = None,
    limit: Annotated[int, typer.Option(help="Scored: most covers in the gallery (a seeded sample beyond).",
                                       min=1)] = 600,
    concurrency: ConcurrencyOpt = 64,
    per_host: PerHostOpt = 16,
    timeout: TimeoutOpt = 60.0,
    retries: RetriesOpt = 3,
    allow_private_hosts: AllowPrivateOpt = False,
) -> None:
    """Write an HTML report (OUT/index.html) to look at covers, predictions and models.

    For labelled covers: a sight-check grid per genre, cross-validated figures with confusion
    heatmaps, a 2-D map of the CNN embeddings and occlusion activation maps. For a scored output:
    a summary and a gallery of covers with their genres, filterable by genre and kept.
    """
    from scorer import api
    from scorer.errors import UsageError

    try:
        index = api.report(input, out, folds=folds, seed=seed, heads=heads, per_genre=per_genre, grid=grid,
                           activations=activations, activation_head=activation_head, projection=projection,
                           evaluation=evaluation, featurizer=featurizer, limit=limit, log=_log,
                           concurrency=concurrency, per_host=per_host, timeout=timeout, retries=retries,
                           allow_private_hosts=allow_private_hosts)
    except UsageError as e:
        fail(str(e))
    typer.echo(f"wrote {index}")


@app.command()
def info(model: ModelOpt = None) -> None:
    """Show the model's genres, heads and cross-validated figures."""
    from scorer.api import load_model
    from scorer.errors import UsageError

    try:
        m = load_model(model)
    except UsageError as e:
        fail(str(e))
    from scorer.cli.console import print_model

    print_model(m)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
