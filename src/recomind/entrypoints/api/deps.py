"""Shared request dependencies: the wired RecoMind and validated path ids; and `Answer`,
what the fast paths return to `hot_paths.HotRoutes`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request

from recomind.bootstrap import RecoMind
from recomind.domain.validation import validate_id


async def get_recomind(request: Request) -> RecoMind:
    recomind: RecoMind = request.app.state.recomind
    return recomind


App = Annotated[RecoMind, Depends(get_recomind)]
Answer = tuple[int, list[Any], bytes]  # status, headers, body


async def _user_id(user_id: Annotated[str, Path()]) -> str:
    return validate_id(user_id, "user_id")


async def _video_id(video_id: Annotated[str, Path()]) -> str:
    return validate_id(video_id, "video_id")


UserId = Annotated[str, Depends(_user_id)]
VideoId = Annotated[str, Depends(_video_id)]
