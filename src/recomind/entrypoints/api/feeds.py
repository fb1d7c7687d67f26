"""GET /recommendations/{user_id}, /trending and /videos/{id}/similar: bare JSON arrays.

Paging travels in headers: `X-Next-Cursor` and a `Link: <…>; rel="next"`. A viewer's
feed pages through a feed session (`services/feed_sessions.py`); trending pages by
offset. Every answer is bytes in a plain `Response`: `response_model` documents the
shape in OpenAPI, but FastAPI does not validate a returned `Response`. Feed and trending
pages are cut out of the cached lists' bytes (`services/packed_list.py`), with no
pydantic pass and no item serialised again. `feed_fast_path.FeedFastPath` answers the
feed and trending pages of the served app (through `hot_paths.HotRoutes`) without these
routes' per-request machinery; the routes stay for OpenAPI and as the fallback.
"""

from __future__ import annotations

import base64
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from recomind.bootstrap import RecoMind
from recomind.domain.errors import InvalidInput, NotFound
from recomind.entrypoints.api.deps import App, UserId, VideoId
from recomind.entrypoints.api.schemas import FeedItemOut, Problem
from recomind.services.feed import FeedItem, public_items
from recomind.services.packed_list import PackedList

router = APIRouter(tags=["feeds"])
Limit = Annotated[int, Query(ge=1, le=100, description="How many videos (1-100)")]
Explain = Annotated[bool, Query(description="Add a `reason` to each video")]
Cursor = Annotated[str | None, Query(description="From X-Next-Cursor of the previous page")]


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("not a cursor this API gave out", field="cursor") from None
    if offset < 0:
        raise InvalidInput("not a cursor this API gave out", field="cursor")
    return offset


def _next_page_headers(request: Request, cursor: str) -> dict[str, str]:
    url = request.url.include_query_params(cursor=cursor)
    return {"X-Next-Cursor": cursor, "Link": f'<{url}>; rel="next"'}


def _json(items: list[FeedItem]) -> Response:
    """The items as the bare JSON array, serialised by orjson (nothing validates them
    again: the routes' `response_model` is their OpenAPI contract)."""
    return Response(orjson.dumps(public_items(items, False)), media_type="application/json")


FEED_HEADERS = {
    "X-Feed-Source": {
        "description": "Where the list came from: cache, table, computed or trending",
        "schema": {"type": "string", "enum": ["cache", "table", "computed", "trending"]},
    },
    "X-Feed-Session": {
        "description": "started (no cursor), continued, or restarted (the cursor's session "
        "had expired, so this is the first page of a new one)",
        "schema": {"type": "string", "enum": ["started", "continued", "restarted"]},
    },
    "X-Next-Cursor": {
        "description": "Pass as `cursor` for the next page; absent at the end of the list",
        "schema": {"type": "string"},
    },
    "Link": {"description": '`<next page URL>; rel="next"`', "schema": {"type": "string"}},
}
PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


@router.get(
    "/recommendations/{user_id}",
    response_model=list[FeedItemOut],
    response_model_exclude_none=True,
    responses={
        200: {"description": "A page of the viewer's feed", "headers": FEED_HEADERS},
        422: {**PROBLEM, "description": "A bad id, limit or cursor"},
    },
)
def get_recommendations(
    user_id: UserId,
    app: App,
    request: Request,
    limit: Limit = 10,
    explain: Explain = False,
    cursor: Cursor = None,
) -> Response:
    """The viewer's personalised feed (trending for a viewer RecoMind does not know yet).

    Without a cursor, the first page of a new feed session; with one, the next page of
    the viewer's current list, leaving out every video the session already served.
    """
    page = app.feed.page(user_id, limit, cursor, explain)
    headers = {"X-Feed-Source": page.source, "X-Feed-Session": page.session.value}
    if page.next_cursor is not None:
        headers.update(_next_page_headers(request, page.next_cursor))
    return Response(page.body, media_type="application/json", headers=headers)


@router.get(
    "/trending",
    response_model=list[FeedItemOut],
    response_model_exclude_none=True,
    responses={200: {"headers": {k: FEED_HEADERS[k] for k in ("X-Next-Cursor", "Link")}}},
)
def get_trending(
    app: App,
    request: Request,
    limit: Limit = 10,
    explain: Explain = False,
    cursor: Cursor = None,
) -> Response:
    """What is engaging everyone lately (time-decayed; likes count more than views)."""
    body, next_cursor = trending_page(app, limit, cursor, explain)
    headers = _next_page_headers(request, next_cursor) if next_cursor is not None else {}
    return Response(body, media_type="application/json", headers=headers)


def trending_page(
    app: RecoMind, limit: int, cursor: str | None, explain: bool
) -> tuple[bytes, str | None]:
    """A page of trending as JSON bytes and the next page's cursor (None at the end)."""
    _offset(cursor)  # a bad cursor is refused before anything is read
    return trending_page_of(app, app.feed.trending_list(), limit, cursor, explain)


def trending_page_of(
    app: RecoMind, items: PackedList, limit: int, cursor: str | None, explain: bool
) -> tuple[bytes, str | None]:
    """`trending_page` of the trending list as read."""
    offset = _offset(cursor)
    end = min(offset + limit, len(items), app.settings.top_n)
    next_cursor = None
    if end < min(len(items), app.settings.top_n):
        next_cursor = base64.urlsafe_b64encode(str(end).encode()).decode().rstrip("=")
    body = items.page(range(offset, end), explain) if offset < end else b"[]"
    return body, next_cursor


@router.get(
    "/videos/{video_id}/similar", response_model=list[FeedItemOut], response_model_exclude_none=True
)
def get_similar(video_id: VideoId, app: App, limit: Limit = 10) -> Response:
    """Viewers who watched this also watched (tag neighbours for videos with few views)."""
    if app.store.get_video(video_id) is None:
        raise NotFound("video", video_id)
    return _json(app.feed.similar(video_id, limit) or [])
