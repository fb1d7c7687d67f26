"""Run the API on an ASGI server: uvicorn (uvloop + httptools) or granian, and how many
processes (ADR 0004). granian is optional: `pip install 'recomind[granian]'`.

uvicorn with one process serves an app made here, in this process. granian, and uvicorn
with several processes, start workers that each build their own app from the RECOMIND_*
environment through `app_from_environment`, so the caller's wired RecoMind is closed first.
Consumers run only in a single-process server: several API processes each running the
consumer groups would compete for the same partitions, so `workers > 1` needs
`RECOMIND_EMBEDDED_WORKER=false` and a `recomind worker`.
"""

from __future__ import annotations

import os
import signal
import sys

from fastapi import FastAPI

from recomind.bootstrap import RecoMind, bootstrap
from recomind.config import AsgiServer, Settings
from recomind.entrypoints.heap import freeze_startup_heap
from recomind.entrypoints.logs import configure_logging

FACTORY = "recomind.entrypoints.api.server:app_from_environment"
# Whether a worker process runs the consumers: the caller's choice, not only the setting
# (`recomind demo` always runs them).
_RUN_CONSUMERS = "RECOMIND_SERVE_RUN_CONSUMERS"
_PARENT = "RECOMIND_SERVE_PARENT"
_PR_SET_PDEATHSIG = 1


class ServeError(ValueError):
    """A combination of options that cannot be served."""


def app_from_environment() -> FastAPI:
    """The factory each server worker process calls: settings, logging, a wired app."""
    from recomind.entrypoints.api.app import create_app

    _die_with_parent()
    settings = Settings()
    configure_logging(settings.log_level, json=True)
    app = create_app(bootstrap(settings), run_workers=os.environ.get(_RUN_CONSUMERS) == "1")
    freeze_startup_heap()
    return app


def _die_with_parent() -> None:
    """A worker must not outlive its server process: after a `kill -9` of `recomind serve` an
    orphan would keep the port, the consumers and the embedded event log (Linux only)."""
    parent = os.environ.get(_PARENT)
    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):  # the server died before the line above took effect
        os._exit(1)


def serve(
    recomind: RecoMind,
    host: str,
    port: int,
    run_consumers: bool,
    server: AsgiServer,
    workers: int,
) -> None:
    """Serve until stopped; `recomind` is used in-process or closed for the workers to rebuild."""
    if workers > 1 and run_consumers:
        recomind.close()
        raise ServeError(
            "several API processes cannot each run the consumers: set "
            "RECOMIND_EMBEDDED_WORKER=false and run `recomind worker`, or use one worker"
        )
    level = recomind.settings.log_level
    configure_logging(level, json=True)
    if server is AsgiServer.UVICORN and workers == 1:
        import uvicorn

        from recomind.entrypoints.api.app import create_app

        app = create_app(recomind, run_workers=run_consumers)
        freeze_startup_heap()
        uvicorn.run(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            log_level=level,
            access_log=False,
            log_config=None,  # uvicorn's own loggers write our JSON lines (with request ids) too
        )
        return
    recomind.close()
    os.environ[_RUN_CONSUMERS] = "1" if run_consumers else "0"
    os.environ[_PARENT] = str(os.getpid())
    if server is AsgiServer.UVICORN:
        import uvicorn

        uvicorn.run(
            FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            log_level=level,
            access_log=False,
            log_config=None,
        )
        return
    try:
        from granian import Granian
        from granian.constants import Interfaces, Loops
    except ImportError:
        raise ServeError("granian is not installed: pip install 'recomind[granian]'") from None

    Granian(
        FACTORY,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        websockets=False,
        log_enabled=False,  # our JSON handler, installed by the factory in each worker
        log_access=False,  # ObserveRequests writes the access lines, with request ids
    ).serve()
