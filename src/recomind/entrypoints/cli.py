"""The `recomind` command: demo, serve, worker, train, import, recommend, evaluate."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from recomind.bootstrap import RecoMind, bootstrap
from recomind.config import AsgiServer, Settings
from recomind.domain.errors import RecoMindError
from recomind.domain.validation import validate_id
from recomind.entrypoints.logs import configure_logging

app = typer.Typer(help="RecoMind: personalised short-video feeds.", no_args_is_help=True)
import_app = typer.Typer(help="Bulk-load users, videos or actions (.csv, .jsonl, .parquet).")
app.add_typer(import_app, name="import")
modelserver_app = typer.Typer(
    help="The ranker as a SageMaker-compatible model server: `serve` and `train`.",
    no_args_is_help=True,
)
app.add_typer(modelserver_app, name="modelserver")
console = Console()
err = Console(stderr=True)

Port = Annotated[int | None, typer.Option(help="Port to listen on (default: RECOMIND_PORT)")]
Host = Annotated[str | None, typer.Option(help="Address to bind (default: RECOMIND_HOST)")]


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the bad RECOMIND_* variable
        err.print(f"[red]error:[/red] invalid configuration: {exc}")
        raise typer.Exit(2) from None


@contextmanager
def _recomind() -> Iterator[RecoMind]:
    try:
        recomind = bootstrap(_settings())
    except RecoMindError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    try:
        yield recomind
    except RecoMindError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        recomind.close()


@contextmanager
def _progress(description: str) -> Iterator[Callable[[str], None]]:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(description)
        yield lambda msg: progress.update(task, description=f"{description}: {msg}")


def _serve(
    recomind: RecoMind,
    host: str,
    port: int,
    workers: bool,
    server: AsgiServer | None = None,
    processes: int | None = None,
) -> None:
    from recomind.entrypoints.api.server import ServeError, serve

    try:
        serve(
            recomind,
            host,
            port,
            run_consumers=workers,
            server=server or recomind.settings.server,
            workers=processes or recomind.settings.workers,
        )
    except ServeError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def demo(
    port: Port = None,
    host: Host = None,
    videos: Annotated[int, typer.Option(help="Catalog size when seeding")] = 500,
    viewers: Annotated[int, typer.Option(help="Simulated viewers when seeding")] = 200,
) -> None:
    """Seed a synthetic catalog (once), train, and serve the API and web page."""
    from recomind.services.seed import seed_demo

    settings = _settings()
    recomind = bootstrap(settings)
    if recomind.store.counts()["videos"] == 0:
        with _progress("seeding the demo catalog") as step:
            report = seed_demo(recomind.importer, n_videos=videos, n_users=viewers, progress=step)
        console.print(
            f"seeded {report['videos']} videos, {report['users']} viewers, "
            f"{report['actions']} actions"
        )
    else:
        console.print(f"using the data already in {settings.home}")
    with _progress("training") as step:
        trained = recomind.trainer.train(step)
    console.print(
        f"model {trained.version}: fitted in {trained.fit_seconds:.2f}s, "
        f"{trained.precomputed} lists precomputed"
    )
    h, p = host or settings.host, port if port is not None else settings.port
    console.print(
        f"\nRecoMind is serving on http://{h}:{p}\n"
        f"  web UI:   http://{h}:{p}/ui/\n"
        f"  API docs: http://{h}:{p}/docs\n"
        f"  trending: http://{h}:{p}/trending\n"
        f"  a feed:   http://{h}:{p}/recommendations/u1?explain=true\n"
    )
    _serve(recomind, h, p, workers=True)


@app.command()
def serve(
    port: Port = None,
    host: Host = None,
    server: Annotated[
        AsgiServer | None,
        typer.Option(help="ASGI server (default: RECOMIND_SERVER, uvicorn)"),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="API processes (default: RECOMIND_WORKERS, 1); above 1 needs "
            "RECOMIND_EMBEDDED_WORKER=false",
        ),
    ] = None,
) -> None:
    """Serve the API (and, with RECOMIND_EMBEDDED_WORKER=true, the consumers too)."""
    settings = _settings()
    recomind = bootstrap(settings)
    _serve(
        recomind,
        host or settings.host,
        port if port is not None else settings.port,
        workers=settings.embedded_worker,
        server=server,
        processes=workers,
    )


@app.command()
def worker(
    group: Annotated[
        list[str] | None,
        typer.Option(help="Run only these consumer groups (repeatable); default: all"),
    ] = None,
    consumers: Annotated[bool, typer.Option(help="Run consumer groups at all")] = True,
    train: Annotated[bool, typer.Option(help="Run the hourly retraining schedule")] = True,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Serve Prometheus /metrics on this port (RECOMIND_HOST)"
        ),
    ] = None,
) -> None:
    """Run the consumers and the retrain schedule until stopped (SIGTERM / Ctrl-C)."""
    from recomind.entrypoints.heap import freeze_startup_heap
    from recomind.services.consume import EVENT_HANDLERS

    unknown = set(group or ()) - set(EVENT_HANDLERS)
    if unknown:
        raise typer.BadParameter(
            f"unknown group(s) {', '.join(sorted(unknown))}; known: {', '.join(EVENT_HANDLERS)}"
        )
    with _recomind() as recomind:
        configure_logging(recomind.settings.log_level, json=True)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if metrics_port is not None:
            from recomind.entrypoints.api.collector import serve_worker_metrics

            serve_worker_metrics(recomind, recomind.settings.host, metrics_port)
        freeze_startup_heap()
        names = recomind.start_workers(
            schedule_training=train, groups=(group or None) if consumers else ()
        )
        console.print(
            f"worker running: consumer groups {', '.join(names) or 'none'}; "
            f"hourly training {'on' if train else 'off'}"
        )
        stop.wait()


@app.command()
def train() -> None:
    """Train the hybrid now, make it current and precompute every active viewer's list."""
    with _recomind() as recomind, _progress("training") as step:
        r = recomind.trainer.train(step)
    console.print(
        f"model {r.version}: {r.actions:,} actions, {r.users:,} viewers, "
        f"{r.videos:,} videos; fit {r.fit_seconds:.2f}s; "
        f"{r.precomputed:,} lists in {r.precompute_seconds:.2f}s"
    )


@app.command()
def rollback() -> None:
    """Make the previous model version current again."""
    with _recomind() as recomind:
        console.print(f"model in use: {recomind.registry.rollback()}")


def _import(kind: str, path: Path) -> None:
    with _recomind() as recomind, _progress(f"importing {kind}") as step:
        step(str(path))
        start = time.perf_counter()
        result = getattr(recomind.importer, kind)(path)
        seconds = time.perf_counter() - start
    rate = result.rows / seconds if seconds > 0 else 0.0
    console.print(
        f"{kind}: {result.rows:,} rows read, {result.written:,} written "
        f"in {seconds:.2f}s ({rate:,.0f} rows/s)"
    )


@import_app.command("videos")
def import_videos(file: Path) -> None:
    """videos: video_id, title, url, tags, creator_id, created_at, duration_ms."""
    _import("videos", file)


@import_app.command("users")
def import_users(file: Path) -> None:
    """users: user_id, name, created_at."""
    _import("users", file)


@import_app.command("actions")
def import_actions(file: Path) -> None:
    """actions: id (optional), user_id, video_id, action_type, timestamp, watch_ms."""
    _import("actions", file)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for videos/users/actions.parquet")],
    videos: Annotated[int, typer.Option(min=1)] = 500,
    viewers: Annotated[int, typer.Option(min=1)] = 200,
    actions_per_viewer: Annotated[int, typer.Option(min=1)] = 40,
    seed: int = 7,
) -> None:
    """Write a synthetic platform (viewers with hidden tastes) as files for `recomind import`."""
    from recomind.services.simulator import export_parquet
    from recomind.services.simulator import simulate as make_world

    with _progress("simulating"):
        world = make_world(videos, viewers, actions_per_viewer, seed=seed)
        paths = export_parquet(world, out)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")
    console.print(
        f"{len(world.actions):,} actions; import with `recomind import videos|users|actions`"
    )


def _user_ids(users: list[str], users_file: Path | None) -> list[str]:
    from recomind.services.importer import read_rows

    ids = list(users)
    if users_file is not None:
        if users_file.suffix.lower() == ".txt":
            ids += [line.strip() for line in users_file.read_text().splitlines() if line.strip()]
        else:
            ids += [str(r.get("user_id", "")) for r in read_rows(users_file)]
    if not ids:
        raise RecoMindError("name at least one USER_ID or a --users-file")
    return [validate_id(u, "user_id", row=i + 1 if users_file else None) for i, u in enumerate(ids)]


def _ranked_line(recomind: RecoMind, user_id: str, k: int) -> dict[str, Any]:
    items = [
        {"video_id": s.video_id, "score": round(s.score, 6)}
        for s in recomind.feed.ranked(user_id, k)
    ]
    return {"user_id": user_id, "items": items}


@app.command()
def recommend(
    users: Annotated[list[str] | None, typer.Argument(help="Viewer ids")] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Videos per viewer")] = 10,
    users_file: Annotated[
        Path | None, typer.Option(help=".txt (one id a line), .csv, .jsonl")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write JSON Lines here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON Lines")] = False,
) -> None:
    """Top-k per viewer from the latest model, leaving out videos they have seen."""
    with _recomind() as recomind:
        ids = _user_ids(users or [], users_file)
        if recomind.models.get() is None:
            raise typer.BadParameter("no trained model yet: run `recomind train` first")
        lines = (_ranked_line(recomind, u, k) for u in ids)
        if output is not None:
            with output.open("wb") as fh:
                for line in lines:
                    fh.write(orjson.dumps(line) + b"\n")
            console.print(f"wrote {len(ids):,} viewers to {output}")
        elif as_json:
            for line in lines:
                sys.stdout.write(orjson.dumps(line).decode() + "\n")
        else:
            for u in ids:
                table = Table(title=f"viewer {u}")
                for col in ("#", "video_id", "score"):
                    table.add_column(col)
                for i, s in enumerate(recomind.feed.ranked(u, k), start=1):
                    table.add_row(str(i), s.video_id, f"{s.score:.4f}")
                console.print(table)


@app.command()
def evaluate(
    k: Annotated[int, typer.Option("--k", min=1, max=200)] = 10,
    holdout: Annotated[
        float,
        typer.Option(min=0.05, max=0.5, help="Share of each viewer's latest actions held out"),
    ] = 0.2,
    tune: Annotated[
        bool,
        typer.Option(
            help="Tune every baseline (same budget each) on a validation split of the training data"
        ),
    ] = True,
    cold_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help="Share of test viewers cut to their first 1-3 training actions (0: no protocol)",
        ),
    ] = 0.1,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated models (default: the hybrid and every baseline)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the cold-start viewers' choice")] = 0,
    cold_seeds: Annotated[
        int,
        typer.Option(
            min=1,
            max=20,
            help="Repeat the cold-start protocol with this many seeds (seed, seed+1, ...), pooled",
        ),
    ] = 5,
    output: Annotated[Path | None, typer.Option(help="Write the results as JSON here")] = None,
) -> None:
    """Offline quality on a temporal per-viewer hold-out: the hybrid beside tuned baselines."""
    from recomind.services.evaluation import MODELS
    from recomind.services.evaluation import evaluate as run

    chosen = tuple(m.strip() for m in models.split(",") if m.strip()) if models else MODELS
    unknown = [m for m in chosen if m not in MODELS]
    if unknown or not chosen:
        err.print(
            f"[red]error:[/red] unknown model(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(MODELS)}"
        )
        raise typer.Exit(2)
    with _recomind() as recomind, _progress("evaluating") as step:
        videos = recomind.store.all_videos()
        step("loading actions")
        actions = [a for batch in recomind.store.iter_actions() for a in batch]
        if not actions:
            raise RecoMindError("no actions stored: import or record some first")
        step(f"{len(actions):,} actions")
        result = run(
            videos,
            actions,
            recomind.settings.action_weights,
            k=k,
            holdout=holdout,
            models=chosen,
            tune_baselines=tune,
            cold_share=cold_share,
            seed=seed,
            cold_seeds=cold_seeds,
            progress=step,
        )
    if result.tuned:
        tuned = Table(title="baselines tuned on a validation split of the training data")
        for col in ("model", "configurations tried", f"validation NDCG@{k}", "chosen"):
            tuned.add_column(col)
        for t in result.tuned:
            label = ", ".join(f"{key}={value}" for key, value in t.params.items())
            tuned.add_row(t.model, str(t.tried), f"{t.validation_ndcg:.4f}", label)
        console.print(tuned)
    table = Table(title=f"temporal hold-out ({holdout:.0%} latest per viewer), K={k}")
    for col in (
        "model",
        "segment",
        "viewers",
        f"Recall@{k}",
        f"NDCG@{k}",
        f"HitRate@{k}",
        "coverage",
        "novelty",
    ):
        table.add_column(col)
    for s in result.scores:
        table.add_row(
            s.model,
            s.segment,
            str(s.users),
            f"{s.recall:.4f}",
            f"{s.ndcg:.4f}",
            f"{s.hit_rate:.4f}",
            f"{s.coverage:.3f}",
            f"{s.novelty:.2f}",
        )
    console.print(table)
    for name, ratio in result.ratios().items():
        console.print(f"NDCG@{k} {name}: {ratio:.3f}x")
    if output is not None:
        output.write_text(json.dumps(result.as_dict(), indent=2))
        console.print(f"wrote {output}")


ModelDir = Annotated[
    Path | None,
    typer.Option(
        help="Model registry folder (default: RECOMIND_MODELSERVER_MODEL_DIR or SM_MODEL_DIR, "
        "else /opt/ml/model if it exists, else RECOMIND_MODEL_DIR)"
    ),
]


@modelserver_app.command("serve")
def modelserver_serve(
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Port (default: RECOMIND_MODELSERVER_PORT or SAGEMAKER_BIND_TO_PORT, else 8080)",
        ),
    ] = None,
    host: Host = None,
    model_dir: ModelDir = None,
) -> None:
    """Serve GET /ping and POST /invocations; SIGHUP reloads the registry's CURRENT model."""
    import uvicorn

    from recomind.bootstrap import bootstrap_model_server
    from recomind.entrypoints.modelserver.app import create_model_server

    settings = _settings()
    serving = bootstrap_model_server(settings, model_dir)
    h = host or settings.host
    p = port if port is not None else settings.modelserver_port
    loaded = serving.watcher.get()
    console.print(
        f"model server on http://{h}:{p}: model "
        f"{loaded.version if loaded else 'none yet'} from {serving.registry.root}"
    )
    configure_logging(settings.log_level, json=True)
    uvicorn.run(
        create_model_server(serving),
        host=h,
        port=p,
        log_level=settings.log_level,
        access_log=False,
        log_config=None,
    )


@modelserver_app.command("train")
def modelserver_train(
    training_input: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="The lake: a folder holding video_actions/, or a lake URL (default: "
            "SM_CHANNEL_TRAINING, else /opt/ml/input/data/training, else RECOMIND_LAKE_URL)",
        ),
    ] = None,
    catalog: Annotated[
        Path | None,
        typer.Option(
            help="Videos as a file or folder in the `import videos` format (default: "
            "SM_CHANNEL_CATALOG, else /opt/ml/input/data/catalog, else the store)"
        ),
    ] = None,
    model_dir: ModelDir = None,
) -> None:
    """Fit the ranker from the lake and make it the current version in the model folder."""
    from recomind.bootstrap import bootstrap_training_job
    from recomind.entrypoints.modelserver.training import train_from_lake

    settings = _settings()

    def failed(reason: str) -> None:
        # SageMaker reads why a training job failed from /opt/ml/output/failure.
        if settings.modelserver_output_dir.is_dir():
            (settings.modelserver_output_dir / "failure").write_text(f"{reason}\n")

    try:
        inputs = bootstrap_training_job(settings, training_input, catalog, model_dir)
        try:
            with _progress("training from the lake"):
                r = train_from_lake(inputs)
        finally:
            inputs.close()
    except RecoMindError as exc:
        failed(str(exc))
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except Exception as exc:
        failed(f"{type(exc).__name__}: {exc}")
        raise
    console.print(
        f"model {r.version} in {r.model_dir}: {r.actions:,} actions "
        f"({r.lake_actions:,} in the lake), {r.users:,} viewers, {r.videos:,} videos; "
        f"fit {r.fit_seconds:.2f}s"
    )


if __name__ == "__main__":  # pragma: no cover
    app()
