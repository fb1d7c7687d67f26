"""GET /recommendations/{user_id} and GET /trending without FastAPI's per-request machinery.

`FeedFastPath` answers them for `hot_paths.HotRoutes`, which takes these requests (and
`POST /video_action`) before FastAPI's middleware and router: it skips routing through every
route, dependency solving and the `Request`/`Response` objects, parses the path and the
query by hand, and returns the page's bytes. Its answers match the FastAPI routes in
`feeds.py` byte for byte: the query is validated by pydantic with the routes' own
constraints (`limit` 1-100, `explain` a bool), in the same order (the viewer id first, then
the query, then the cursor), and every error is raised for the app's own exception
handlers, so each 4xx is the same problem+json. A path it does not match
(`/recommendations/a/b`, `HEAD`) goes on to FastAPI.

A page whose list is in the cache is answered on the event loop: one quick read of the
cache (`Cache.get_quick`: the blocking Redis client with 100 ms timeouts, which costs less
per read here than redis.asyncio, and after a failure the loop leaves Redis alone for 5 s),
then the page is cut out of the bytes and the cursor signed, with no other I/O (the session
travels in the cursor and the impressions are written behind, `services/impressions.py`).
Everything else, a list missing
from the cache (read from the store or computed) and trending when `popular_videos` is
missing, runs in a worker thread, as FastAPI runs a sync route. The threads are the fast
path's own pool (`THREADS`), handed work by `loop.run_in_executor`: a third of the cost of
Starlette's `run_in_threadpool` (anyio's thread hop) in a micro-benchmark on this project's
machine (13-19 us against 43-58 us a call, 32 concurrent callers). The request's context
(its request id for the log lines) goes with the call.

The FastAPI routes stay: they are what the OpenAPI document describes, and they serve the
requests when the fast path is not installed.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import URL, QueryParams
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope

from recomind.bootstrap import RecoMind
from recomind.domain import cache_keys
from recomind.domain.validation import validate_id
from recomind.entrypoints.api import feeds
from recomind.entrypoints.api.deps import Answer
from recomind.services.feed import FeedPage

FEED_PREFIX = "/recommendations/"
FEED_ROUTE = "/recommendations/{user_id}"
TRENDING = "/trending"

T = TypeVar("T")
OffLoop = Callable[..., Awaitable[Any]]  # FeedFastPath._off_loop

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


def _feed_headers(scope: Scope, page: FeedPage) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-feed-source", page.source.encode()),
        (b"x-feed-session", page.session.value.encode()),
    ]
    if page.next_cursor is not None:
        headers += _next_page_headers(scope, page.next_cursor)
    return headers


async def _feed_page(
    recomind: RecoMind, scope: Scope, user_id: str, off_loop: OffLoop
) -> tuple[bytes, list[Any]]:
    validate_id(user_id, "user_id")
    limit, explain, cursor = parse_query(scope["query_string"])
    feed = recomind.feed
    wanted = feed.sessions.check(user_id, cursor)
    cached = recomind.cache.get_quick(cache_keys.recommendations(user_id))
    page = feed.cached_page(user_id, limit, wanted, explain, cached)
    if page is None:  # not in the cache: the store, or computed, in a worker thread
        page = await off_loop(feed.page, user_id, limit, cursor, explain)
    return page.body, _feed_headers(scope, page)


async def _trending_page(
    recomind: RecoMind, scope: Scope, off_loop: OffLoop
) -> tuple[bytes, list[Any]]:
    limit, explain, cursor = parse_query(scope["query_string"])
    cached = recomind.cache.get_quick(cache_keys.POPULAR_VIDEOS)
    items = recomind.feed.cached_trending(cached)
    if items is None:  # built from the store in a worker thread
        items = await off_loop(recomind.feed.trending_list)
    body, next_cursor = feeds.trending_page_of(recomind, items, limit, cursor, explain)
    return body, _next_page_headers(scope, next_cursor) if next_cursor is not None else []


def _next_page_headers(scope: Scope, cursor: str) -> list[tuple[bytes, bytes]]:
    url = next_page_url(scope, cursor)
    return [(b"x-next-cursor", cursor.encode()), (b"link", f'<{url}>; rel="next"'.encode())]


# What `urlsplit`/`urlunsplit`, `parse_qsl` and `urlencode` give back unchanged: a path of
# plain characters, and query parts `name=value` of characters `quote_plus` keeps as they are.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9/_.~%:@!$'()*+,;=-]*")
_PLAIN_PARAM = re.compile(r"[A-Za-z0-9_.~-]+=[A-Za-z0-9_.~-]*")
_ORIGINS: dict[tuple[str, str | None, Any], str] = {}  # (scheme, Host, server) -> scheme://netloc
_ORIGINS_MAX = 64


def next_page_url(scope: Scope, cursor: str) -> str:
    """The request's URL with `cursor` set, exactly as Starlette's
    `URL(scope=scope).include_query_params(cursor=cursor)` spells it, which cost about 70 us
    a page (it parses and joins the whole URL twice). The origin is Starlette's, worked out
    once per Host header; a plain path and query (a cursor is base64url) are joined here,
    anything else is left to Starlette."""
    path: str = scope["path"]
    query = scope["query_string"].decode("latin-1")
    parts = query.split("&") if query else []
    added = f"cursor={cursor}"
    plain = _PLAIN_PATH.fullmatch(path) and _PLAIN_PARAM.fullmatch(added)
    origin = _origin(scope) if plain else ""
    if not origin or not all(_PLAIN_PARAM.fullmatch(part) for part in parts):
        return str(URL(scope=scope).include_query_params(cursor=cursor))
    kept = [part for part in parts if not part.startswith("cursor=")]  # the new one goes last
    return f"{origin}{path}?{'&'.join([*kept, added])}"


def _origin(scope: Scope) -> str:
    """`scheme://netloc` as Starlette's URL makes it from the Host header or the server;
    "" when it has none."""
    host = None
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
            break
    key = (scope.get("scheme", "http"), host, scope.get("server"))
    origin = _ORIGINS.get(key)
    if origin is None:
        url = str(URL(scope={**scope, "path": "/", "query_string": b""}))
        origin = url[:-1] if "://" in url and url.endswith("/") else ""  # "/": no host known
        if len(_ORIGINS) >= _ORIGINS_MAX:  # clients choose the Host header: stay bounded
            _ORIGINS.clear()
        _ORIGINS[key] = origin
    return origin


class FeedFastPath:
    """Answers the feed and trending pages without FastAPI's router (see the module
    docstring); `hot_paths.HotRoutes` routes the requests here and sends the answers."""

    def __init__(self, api: FastAPI) -> None:
        self.api = api
        self.routes: dict[str, BaseRoute] = {}
        self._threads: ThreadPoolExecutor | None = None

    def match(self, method: str, path: str) -> str | None:
        """The route template this path is answered under here, or None (FastAPI's)."""
        if method != "GET":
            return None
        if path.startswith(FEED_PREFIX):
            user_id = path[len(FEED_PREFIX) :]
            # `/recommendations/` and `/recommendations/a/b` are FastAPI's 404s
            return FEED_ROUTE if user_id and "/" not in user_id else None
        return TRENDING if path == TRENDING else None

    def route(self, template: str) -> BaseRoute:
        """The FastAPI route object of `template` (the metrics' route label, as if routed)."""
        route = self.routes.get(template)
        if route is None:
            route = next(r for r in feeds.router.routes if getattr(r, "path", None) == template)
            self.routes[template] = route
        return route

    async def answer(self, scope: Scope, receive: Receive, template: str) -> Answer:
        """A 200 page, or the exception a FastAPI route would raise (for the app's handlers)."""
        recomind: RecoMind = self.api.state.recomind
        if template == FEED_ROUTE:
            user_id = scope["path"][len(FEED_PREFIX) :]
            body, headers = await _feed_page(recomind, scope, user_id, self._off_loop)
        else:
            body, headers = await _trending_page(recomind, scope, self._off_loop)
        headers += [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]
        return 200, headers, body

    async def _off_loop(self, call: Callable[..., T], *args: Any) -> T:
        """`call(*args)` in one of the fast path's threads, in this request's context."""
        if self._threads is None:  # made on the first miss, never at import or start-up
            self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="feed")
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, partial(context.run, call, *args))
