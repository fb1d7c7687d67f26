"""The catalog: users and videos, validated the same way whether from the API or a file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from recomind.domain.errors import InvalidInput
from recomind.domain.model import User, Video
from recomind.domain.ports import Store
from recomind.domain.validation import normalise_tags, parse_timestamp, validate_id

MAX_TITLE = 500
MAX_URL = 2048


def _text(
    value: object, field: str, limit: int, row: int | None, required: bool = True
) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidInput("is required", field=field, row=row)
        return None
    if not isinstance(value, str):
        raise InvalidInput("must be a string", field=field, row=row)
    text = value.strip()
    if required and not text:
        raise InvalidInput("must not be blank", field=field, row=row)
    if len(text) > limit:
        raise InvalidInput(f"longer than {limit} characters", field=field, row=row)
    return text


def _tags(value: object, row: int | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # CSV form: "funny|pets"
        return normalise_tags(value.split("|"), row)
    if isinstance(value, list | tuple):
        return normalise_tags(value, row)
    raise InvalidInput("must be a list of strings", field="tags", row=row)


def _optional_int(value: object, field: str, row: int | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(str(value)) if not isinstance(value, int) else value
    except ValueError:
        raise InvalidInput("must be a whole number", field=field, row=row) from None
    if number < 0 or isinstance(value, bool):
        raise InvalidInput("must be a non-negative whole number", field=field, row=row)
    return number


def to_user(data: Mapping[str, Any], row: int | None = None, now: datetime | None = None) -> User:
    created = data.get("created_at")
    return User(
        user_id=validate_id(data.get("user_id"), "user_id", row),
        name=_text(data.get("name"), "name", 256, row, required=False),
        created_at=parse_timestamp(created, row)
        if created not in (None, "")
        else now or datetime.now(UTC),
    )


def to_video(data: Mapping[str, Any], row: int | None = None, now: datetime | None = None) -> Video:
    created = data.get("created_at")
    creator = data.get("creator_id")
    return Video(
        video_id=validate_id(data.get("video_id"), "video_id", row),
        title=_text(data.get("title"), "title", MAX_TITLE, row) or "",
        url=_text(data.get("url"), "url", MAX_URL, row) or "",
        tags=_tags(data.get("tags"), row),
        creator_id=validate_id(creator, "creator_id", row) if creator not in (None, "") else None,
        created_at=parse_timestamp(created, row)
        if created not in (None, "")
        else now or datetime.now(UTC),
        duration_ms=_optional_int(data.get("duration_ms"), "duration_ms", row),
    )


def _no_repeats(ids: Sequence[str], field: str) -> None:
    seen: set[str] = set()
    for row, ident in enumerate(ids, start=1):
        if ident in seen:
            raise InvalidInput(f"{ident!r} appears twice", field=field, row=row)
        seen.add(ident)


class CatalogService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add_users(self, users: Sequence[User]) -> int:
        _no_repeats([u.user_id for u in users], "user_id")
        return self.store.add_users(users)

    def add_videos(self, videos: Sequence[Video]) -> int:
        _no_repeats([v.video_id for v in videos], "video_id")
        return self.store.add_videos(videos)
