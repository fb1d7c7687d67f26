"""GET /recommendations/{user_id}, /trending and /videos/{id}/similar: bare JSON arrays.

Paging travels in headers: `X-Next-Cursor` and a `Link: <…>; rel="next"`.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from recomind.domain.errors import InvalidInput, NotFound
from recomind.entrypoints.api.deps import App, UserId, VideoId
from recomind.entrypoints.api.schemas import FeedItemOut
from recomind.services.feed import FeedItem, public_items

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


def _page(
    items: list[FeedItem], offset: int, limit: int, request: Request, response: Response
) -> list[FeedItem]:
    page = items[offset : offset + limit]
    if offset + limit < len(items):
        cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode().rstrip("=")
        url = request.url.include_query_params(cursor=cursor)
        response.headers["X-Next-Cursor"] = cursor
        response.headers["Link"] = f'<{url}>; rel="next"'
    return page


@router.get(
    "/recommendations/{user_id}", response_model=list[FeedItemOut], response_model_exclude_none=True
)
def get_recommendations(
    user_id: UserId,
    app: App,
    request: Request,
    response: Response,
    limit: Limit = 10,
    explain: Explain = False,
    cursor: Cursor = None,
) -> list[dict[str, Any]]:
    """The viewer's personalised feed (trending for a viewer RecoMind does not know yet)."""
    offset = _offset(cursor)
    feed = app.feed.recommendations(user_id, app.settings.top_n)
    response.headers["X-Feed-Source"] = feed.source
    return public_items(_page(feed.items, offset, limit, request, response), explain)


@router.get("/trending", response_model=list[FeedItemOut], response_model_exclude_none=True)
def get_trending(
    app: App,
    request: Request,
    response: Response,
    limit: Limit = 10,
    explain: Explain = False,
    cursor: Cursor = None,
) -> list[dict[str, Any]]:
    """What is engaging everyone lately (time-decayed; likes count more than views)."""
    offset = _offset(cursor)
    items = app.feed.trending(app.settings.top_n)
    return public_items(_page(items, offset, limit, request, response), explain)


@router.get(
    "/videos/{video_id}/similar", response_model=list[FeedItemOut], response_model_exclude_none=True
)
def get_similar(video_id: VideoId, app: App, limit: Limit = 10) -> list[dict[str, Any]]:
    """Viewers who watched this also watched (tag neighbours for videos with few views)."""
    if app.store.get_video(video_id) is None:
        raise NotFound("video", video_id)
    return public_items(app.feed.similar(video_id, limit) or [], explain=False)
