"""The three hottest routes answered in front of FastAPI's middleware stack.

`GET /recommendations/{user_id}`, `GET /trending` and `POST /video_action` are most of
what a RecoMind API serves. `HotRoutes` sits first in the app's middleware stack (see
`RecoMindAPI`) and answers them in one pass: the request id, the API-key check, the
answer from `FeedFastPath` / `ActionFastPath`, the metrics and the access line, then the
response. Every other request goes on, unchanged, through FastAPI's stack (its error and
telemetry layers, `ObserveRequests`, `RequireApiKey`) to the router.

What a client sees is what that stack would give it: the same `X-Request-Id`, the same
401 problem+json (counted under the `<unmatched>` route, as the key check refuses before
routing), the app's own exception handlers for 4xx problems, and for an exception no
handler takes a plain-text 500 like Starlette's `ServerErrorMiddleware`, the exception
then raised for the server to log. On the cached feed page the layers skipped cost about a
tenth of the app's CPU per request, measured in-process (docs/benchmarks.md, "Hot routes in
front of the middleware").
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from recomind.entrypoints.api.actions import ActionFastPath
from recomind.entrypoints.api.auth import KeyCheck
from recomind.entrypoints.api.deps import Answer
from recomind.entrypoints.api.feed_fast_path import FeedFastPath
from recomind.entrypoints.api.observe import (
    HEADER,
    UNMATCHED,
    Observer,
    incoming_id,
    new_id,
)
from recomind.entrypoints.logs import request_id

_SERVER_ERROR: Answer = (
    500,
    [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")],
    b"Internal Server Error",
)


class RecoMindAPI(FastAPI):
    """FastAPI with `HotRoutes` (when set) in front of the middleware stack it builds."""

    hot_routes: HotRoutes | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.hot_routes is None:
            return stack
        self.hot_routes.app = stack
        return self.hot_routes


class HotRoutes:
    """Answers the hot routes itself and hands everything else to `app`."""

    def __init__(self, api: FastAPI, observer: Observer, keys: tuple[bytes, ...]) -> None:
        self.app: ASGIApp | None = None  # FastAPI's stack, set when the stack is built
        self.api = api
        self.observer = observer
        self.keys = KeyCheck(keys) if keys else None
        self.feed = FeedFastPath(api)
        self.action = ActionFastPath(api)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method: str = scope["method"]
            path: str = scope["path"]
            if (template := self.feed.match(method, path)) is not None:
                await self._serve(scope, receive, send, self.feed, template)
                return
            if (template := self.action.match(method, path)) is not None:
                await self._serve(scope, receive, send, self.action, template)
                return
        assert self.app is not None
        await self.app(scope, receive, send)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: FeedFastPath | ActionFastPath,
        template: str,
    ) -> None:
        started = time.perf_counter()
        rid = incoming_id(scope) or new_id()
        token = request_id.set(rid.decode())
        route = UNMATCHED
        failure: Exception | None = None
        refused = self.keys.refusal(scope["headers"]) if self.keys is not None else None
        if refused is not None:
            status, headers, body = 401, *refused
        else:
            route = template
            scope["route"] = path.route(template)  # as if FastAPI had routed it
            scope["app"] = self.api
            try:
                status, headers, body = await path.answer(scope, receive, template)
            except Exception as exc:
                handled = await self._handled(scope, receive, exc)
                if handled is None:
                    failure = exc
                    handled = _SERVER_ERROR[0], list(_SERVER_ERROR[1]), _SERVER_ERROR[2]
                status, headers, body = handled
        headers.append((HEADER, rid))
        self.observer.record(
            scope["method"], scope["path"], route, status, time.perf_counter() - started
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        if failure is not None:
            raise failure  # the server logs it, with this request's id still set
        request_id.reset(token)

    async def _handled(self, scope: Scope, receive: Receive, exc: Exception) -> Answer | None:
        """`exc` answered by the app's own exception handler, as FastAPI would for a route;
        None when no handler takes it."""
        handlers = self.api.exception_handlers
        handler = next((handlers[k] for k in type(exc).__mro__ if k in handlers), None)
        if handler is None:
            return None
        response = handler(Request(scope, receive), exc)
        if not isinstance(response, Response):
            response = await response
        return response.status_code, list(response.raw_headers), bytes(response.body)
