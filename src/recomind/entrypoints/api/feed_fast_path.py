"""GET /recommendations/{user_id} and GET /trending without FastAPI's per-request machinery.

`FeedFastPath` is a pure ASGI layer inside the API-key and observation middleware, like
`ActionFastPath`: it skips routing through every route, dependency solving and the
`Request`/`Response` objects, parses the path and the query by hand, and sends the page's
bytes. Its answers match the FastAPI routes in `feeds.py` byte for byte: the query is
validated by pydantic with the routes' own constraints (`limit` 1-100, `explain` a bool),
in the same order (the viewer id first, then the query, then the cursor), and every error
goes through the app's own exception handlers, so each 4xx is the same problem+json. A
path it does not recognise (`/recommendations/a/b`, `HEAD`) goes on to FastAPI.

The page is built in a worker thread, as FastAPI runs a sync route: the cache is Redis in
production, and a blocking call on the event loop would stall every request for the cache
client's timeouts (1 s to connect, 2 s a command) while Redis is unreachable, and a list
missing from the cache is read from the store or computed. The threads are the fast path's
own pool (`THREADS`), handed work by `loop.run_in_executor`: a third of the cost of
Starlette's `run_in_threadpool` (anyio's thread hop) in a micro-benchmark on this project's
machine (13-19 us against 43-58 us a call, 32 concurrent callers). The request's context
(its request id for the log lines) goes with the call.

The FastAPI routes stay: they are what the OpenAPI document describes, and they serve the
requests when the fast path is not installed.
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import URL, QueryParams
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from recomind.bootstrap import RecoMind
from recomind.domain.validation import validate_id
from recomind.entrypoints.api import feeds
from recomind.entrypoints.api.problems import send_handled

FEED_PREFIX = "/recommendations/"
FEED_ROUTE = "/recommendations/{user_id}"
TRENDING = "/trending"

DEFAULT_LIMIT = 10
THREADS = 32  # pages being built at once; anyio's default pool for sync routes has 40


class _Query(BaseModel):
    """The routes' query constraints (`feeds.Limit`, `feeds.Explain`), checked in one pass."""

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=100)
    explain: bool = False


def parse_query(query_string: bytes) -> tuple[int, bool, str | None]:
    """`limit`, `explain` and `cursor` as the routes declare them, or the
    `RequestValidationError` FastAPI would raise (every bad parameter at once)."""
    if not query_string:
        return DEFAULT_LIMIT, False, None
    query = QueryParams(query_string)  # the last of repeated parameters wins, as in FastAPI
    given = {name: query[name] for name in ("limit", "explain") if name in query}
    try:
        parsed = _Query.model_validate(given)
    except ValidationError as exc:
        errors = [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None
    return parsed.limit, parsed.explain, query.get("cursor")


def _feed_page(recomind: RecoMind, scope: Scope, user_id: str) -> tuple[bytes, list[Any]]:
    validate_id(user_id, "user_id")
    limit, explain, cursor = parse_query(scope["query_string"])
    page = recomind.feed.page(user_id, limit, cursor, explain)
    headers = [
        (b"x-feed-source", page.source.encode()),
        (b"x-feed-session", page.session.value.encode()),
    ]
    if page.next_cursor is not None:
        headers += _next_page_headers(scope, page.next_cursor)
    return page.body, headers


def _trending_page(recomind: RecoMind, scope: Scope) -> tuple[bytes, list[Any]]:
    limit, explain, cursor = parse_query(scope["query_string"])
    body, next_cursor = feeds.trending_page(recomind, limit, cursor, explain)
    return body, _next_page_headers(scope, next_cursor) if next_cursor is not None else []


def _next_page_headers(scope: Scope, cursor: str) -> list[tuple[bytes, bytes]]:
    url = URL(scope=scope).include_query_params(cursor=cursor)
    return [(b"x-next-cursor", cursor.encode()), (b"link", f'<{url}>; rel="next"'.encode())]


class FeedFastPath:
    """Answers the feed and trending pages without FastAPI's router (see the module
    docstring)."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self.routes: dict[str, BaseRoute] = {}
        self._threads: ThreadPoolExecutor | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(FEED_PREFIX) and "/" not in path[len(FEED_PREFIX) :]:
            user_id, route = path[len(FEED_PREFIX) :], FEED_ROUTE
        elif path == TRENDING:
            user_id, route = "", TRENDING
        else:
            await self.app(scope, receive, send)
            return
        if not user_id and route == FEED_ROUTE:  # `/recommendations/`: FastAPI's 404
            await self.app(scope, receive, send)
            return
        scope["route"] = self._route(route)  # the metrics' route label, as if routed
        scope["app"] = self.api
        recomind: RecoMind = self.api.state.recomind
        if self._threads is None:  # made on the first request, never at import or start-up
            self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="feed")
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        try:
            if route == FEED_ROUTE:
                call = partial(context.run, _feed_page, recomind, scope, user_id)
            else:
                call = partial(context.run, _trending_page, recomind, scope)
            body, headers = await loop.run_in_executor(self._threads, call)
        except Exception as exc:
            await send_handled(self.api, Request(scope, receive), exc, send)
            return
        headers += [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _route(self, path: str) -> BaseRoute:
        route = self.routes.get(path)
        if route is None:
            route = next(r for r in feeds.router.routes if getattr(r, "path", None) == path)
            self.routes[path] = route
        return route


def install_fast_path(app: FastAPI) -> None:
    app.add_middleware(FeedFastPath, api=app)
