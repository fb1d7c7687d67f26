"""Per-request observation: a request id, Prometheus request metrics and one access log line.

Pure ASGI rather than `BaseHTTPMiddleware`, which costs a task and a stream per request.
The request id comes from `X-Request-Id` when the client sends a sane one (so a trace can
start at a load balancer), otherwise it is 128 random bits in hex (a uuid4's worth, made
without building a UUID or a system call). It is returned in the response
header and set in `recomind.entrypoints.logs.request_id`, so every log line written while
the request runs carries it. Metrics and the access line are recorded just before the last
body chunk goes out: a client that has read the response will find it counted.
"""

from __future__ import annotations

import logging
import random
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recomind.entrypoints.api.metrics import HttpMetrics
from recomind.entrypoints.logs import DirectLines, request_id

access_log = logging.getLogger("recomind.access")
_direct = DirectLines(access_log)

HEADER = b"x-request-id"
UNMATCHED = "<unmatched>"  # no route: one label for every unknown path, not one per path
QUIET_ROUTES = frozenset({"/health", "/ready", "/metrics"})  # probes: access lines at DEBUG
_SANE_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")


class Observer:
    """What every answer leaves behind: its metrics and its access line."""

    def __init__(self, metrics: HttpMetrics) -> None:
        self.metrics = metrics

    def record(self, method: str, path: str, route: str, status: int, seconds: float) -> None:
        self.metrics.observe(method, route, status, seconds)
        if status >= 500:
            level = logging.ERROR
        elif route in QUIET_ROUTES:
            level = logging.DEBUG
        else:
            level = logging.INFO
        if not access_log.isEnabledFor(level):
            return
        fields = {
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        handler = _direct.handler()
        if handler is not None:  # the same line, without a LogRecord
            _direct.write(handler, level, f"{method} {path} {status}", fields)
            return
        # makeRecord + handle: what Logger.log does, less the search for the caller's
        # source line, which an access line does not print (a tenth of its cost).
        record = access_log.makeRecord(
            access_log.name,
            level,
            __file__,
            0,
            "%s %s %d",
            (method, path, status),
            None,
            extra=fields,
        )
        access_log.handle(record)


class ObserveRequests:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.observer = Observer(metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = incoming_id(scope) or new_id()
        token = request_id.set(rid.decode())
        status = 500
        finished = False

        async def send_observed(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (HEADER, rid)]
            elif not message.get("more_body", False) and not finished:
                finished = True
                self._record(scope, status, started)
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except Exception:
            if not finished:
                finished = True
                self._record(scope, 500, started)
            # The id stays set: the server logs this error next, in this same task.
            raise
        if not finished:  # the app returned without finishing its response
            self._record(scope, status, started)
        request_id.reset(token)

    def _record(self, scope: Scope, status: int, started: float) -> None:
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        seconds = time.perf_counter() - started
        self.observer.record(scope["method"], scope["path"], route, status, seconds)


def new_id() -> bytes:
    """128 random bits in hex: unique, not secret (nothing is authorised by it)."""
    return f"{random.getrandbits(128):032x}".encode()


def incoming_id(scope: Scope) -> bytes | None:
    """The client's `X-Request-Id`, when it sent a sane one."""
    for name, value in scope["headers"]:
        if name == HEADER:
            return value if _SANE_ID.fullmatch(value) else None
    return None
