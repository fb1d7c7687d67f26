"""Request and response models: the OpenAPI contract of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from recomind.domain.validation import MAX_WATCH_MS


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(examples=["u1"])
    video_id: str = Field(examples=["v1"])
    action_type: str = Field(examples=["like"], description="view, like or skip")
    timestamp: str | float | None = Field(
        None, description="ISO 8601 or epoch seconds; default: when the API received it"
    )
    watch_ms: int | None = Field(
        None, ge=0, le=MAX_WATCH_MS, description="How long the video was watched"
    )
    id: str | None = Field(
        None, description="The event id (UUID) the client made, so a retry is not counted twice"
    )


class ActionAccepted(BaseModel):
    id: str
    status: str = "accepted"


class ActionsAccepted(BaseModel):
    ids: list[str]
    status: str = "accepted"


class FeedItemOut(BaseModel):
    video_id: str
    title: str
    url: str
    tags: list[str]
    reason: str | None = Field(None, description="Only with explain=true")


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(None, description="Made as a UUID when left out")
    name: str | None = None


class UserOut(BaseModel):
    user_id: str
    name: str | None
    created_at: str
    top_tags: list[str] = Field(default_factory=list)


class VideoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_id: str | None = Field(None, description="Made as a UUID when left out")
    title: str
    url: str
    tags: list[str] = Field(default_factory=list)
    creator_id: str | None = None
    created_at: str | float | None = None
    duration_ms: int | None = Field(None, ge=0)


class VideoOut(BaseModel):
    video_id: str
    title: str
    url: str
    tags: list[str]
    creator_id: str | None
    created_at: str
    duration_ms: int | None


class VideosCreated(BaseModel):
    video_ids: list[str]


class TrainOut(BaseModel):
    version: str
    actions: int
    users: int
    videos: int
    fit_seconds: float
    precomputed: int
    precompute_seconds: float


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] = Field(default_factory=list)
