"""The FastAPI application: routers, problem+json errors, metrics and request ids, the web
page, the lifespan."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from recomind import __version__
from recomind.bootstrap import RecoMind
from recomind.entrypoints.api import (
    actions,
    auth,
    catalog,
    feed_fast_path,
    feeds,
    metrics,
    problems,
    system,
)
from recomind.entrypoints.api.checks import DependencyChecks
from recomind.entrypoints.api.observe import ObserveRequests


def create_app(recomind: RecoMind, run_workers: bool = True) -> FastAPI:
    """An app around a wired RecoMind; with `run_workers` the consumers run in-process."""
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

    app = FastAPI(
        title="RecoMind",
        version=__version__,
        description="Personalised short-video feeds: record actions, serve Top-N lists.",
        lifespan=lifespan,
    )
    app.state.recomind = recomind
    app.state.checks = checks
    problems.install(app)
    actions.install_fast_path(app)  # innermost: behind the keys and the observation
    feed_fast_path.install_fast_path(app)  # GET feed and trending pages, likewise
    auth.install(app, recomind.settings.api_keys.get_secret_value())  # inside ObserveRequests
    app.add_middleware(ObserveRequests, metrics=metrics.install(app, recomind, checks))
    for module in (actions, feeds, catalog, system):
        app.include_router(module.router)
    web = resources.files("recomind") / "web"
    if web.is_dir():
        app.mount("/ui", StaticFiles(directory=str(web), html=True), name="ui")

        @app.get("/", include_in_schema=False)
        def index() -> RedirectResponse:
            return RedirectResponse("/ui/")

    return app
