"""The FastAPI application: routers, problem+json errors, metrics and request ids, the web
page, the lifespan."""

from __future__ import annotations

import inspect
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from recomind import __version__
from recomind.bootstrap import RecoMind
from recomind.entrypoints.api import actions, auth, catalog, feeds, metrics, problems, system
from recomind.entrypoints.api.checks import DependencyChecks
from recomind.entrypoints.api.hot_paths import HotRoutes, RecoMindAPI
from recomind.entrypoints.api.observe import Observer, ObserveRequests


def _otel_off() -> dict[str, Any]:
    """FastAPI's native OpenTelemetry hooks off, in the FastAPI versions that have them.
    Prometheus is the API's metrics, and FastAPI's look for global OTel providers cost
    about 5 us on every request even with none configured."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(recomind: RecoMind, run_workers: bool = True, hot_routes: bool = True) -> FastAPI:
    """An app around a wired RecoMind; with `run_workers` the consumers run in-process.
    Without `hot_routes` every request goes through FastAPI's routes (tests compare both)."""
    checks = DependencyChecks()  # deadlines for /ready and the bus calls of /metrics

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The catalog's ids in the background: requests go on meanwhile, asking per miss.
        threading.Thread(
            target=recomind.known_videos.preload, name="known-videos", daemon=True
        ).start()
        if run_workers:
            recomind.start_workers()
        try:
            yield
        finally:
            checks.close()
            recomind.close()

    app = RecoMindAPI(
        title="RecoMind",
        version=__version__,
        description="Personalised short-video feeds: record actions, serve Top-N lists.",
        lifespan=lifespan,
        **({} if recomind.settings.otel else _otel_off()),
    )
    app.state.recomind = recomind
    app.state.checks = checks
    problems.install(app)
    keys = recomind.settings.api_keys.get_secret_value()
    auth.install(app, keys)  # inside ObserveRequests
    http_metrics = metrics.install(app, recomind, checks)
    app.add_middleware(ObserveRequests, metrics=http_metrics)
    if hot_routes:  # feed, trending and POST /video_action, in front of all of it
        app.hot_routes = HotRoutes(app, Observer(http_metrics), auth.parse_keys(keys))
    for module in (actions, feeds, catalog, system):
        app.include_router(module.router)
    web = resources.files("recomind") / "web"
    if web.is_dir():
        app.mount("/ui", StaticFiles(directory=str(web), html=True), name="ui")

        @app.get("/", include_in_schema=False)
        def index() -> RedirectResponse:
            return RedirectResponse("/ui/")

    return app
