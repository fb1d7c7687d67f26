"""Users and videos: POST /users, GET /users/{id}, POST /videos, GET /videos/{id}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from recomind.domain.errors import InvalidInput, NotFound
from recomind.domain.model import Video
from recomind.domain.validation import new_event_id
from recomind.entrypoints.api.deps import App, UserId, VideoId
from recomind.entrypoints.api.schemas import UserIn, UserOut, VideoIn, VideoOut, VideosCreated
from recomind.services.catalog import to_user, to_video

router = APIRouter(tags=["catalog"])
MAX_VIDEOS = 1000


@router.post("/users", status_code=201, response_model=UserOut)
def create_user(body: UserIn, app: App) -> UserOut:
    user = to_user({"user_id": body.user_id or new_event_id(), "name": body.name})
    app.catalog.add_users([user])
    return get_user(user.user_id, app)


@router.get("/users/{user_id}", response_model=UserOut)
def get_user(user_id: UserId, app: App) -> UserOut:
    user = app.store.get_user(user_id)
    if user is None:
        raise NotFound("user", user_id)
    profile = app.profiles.get(user_id)
    return UserOut(
        user_id=user.user_id,
        name=user.name,
        created_at=user.created_at.isoformat(),
        top_tags=list(profile.top_tags) if profile else [],
    )


@router.post("/videos", status_code=201, response_model=VideosCreated)
def create_videos(body: Annotated[VideoIn | list[VideoIn], Body()], app: App) -> VideosCreated:
    """Add one video or a list of up to 1,000; adding an existing id updates it."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InvalidInput("the list is empty")
    if len(items) > MAX_VIDEOS:
        raise InvalidInput(f"at most {MAX_VIDEOS} videos per request")
    row = None if len(items) == 1 else 0
    videos = [
        to_video(
            {**v.model_dump(), "video_id": v.video_id or new_event_id()},
            row=None if row is None else i,
        )
        for i, v in enumerate(items)
    ]
    app.catalog.add_videos(videos)
    app.known_videos.add([v.video_id for v in videos])
    return VideosCreated(video_ids=[v.video_id for v in videos])


@router.get("/videos/{video_id}", response_model=VideoOut)
def get_video(video_id: VideoId, app: App) -> VideoOut:
    video = app.store.get_video(video_id)
    if video is None:
        raise NotFound("video", video_id)
    return _video_out(video)


def _video_out(v: Video) -> VideoOut:
    return VideoOut(
        video_id=v.video_id,
        title=v.title,
        url=v.url,
        tags=list(v.tags),
        creator_id=v.creator_id,
        created_at=v.created_at.isoformat(),
        duration_ms=v.duration_ms,
    )
