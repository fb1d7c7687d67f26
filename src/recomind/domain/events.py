"""Events on the bus, and their JSON wire form (the Kafka message value of the design)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from recomind.domain.errors import InvalidInput
from recomind.domain.model import ActionType, VideoAction
from recomind.domain.validation import (
    parse_action_type,
    parse_timestamp,
    validate_event_id,
    validate_id,
    validate_watch_ms,
)

VIDEO_ACTIONS_TOPIC = "video_actions_stream"
DEAD_LETTER_TOPIC = "video_actions_stream.dlq"


@dataclass(frozen=True, slots=True)
class VideoActionRecorded:
    """A viewer acted on a video; published once, applied exactly once per `action.id`."""

    action: VideoAction

    @property
    def key(self) -> str:
        return self.action.user_id

    def to_json(self) -> bytes:
        a = self.action
        body: dict[str, object] = {
            "id": a.id,
            "user_id": a.user_id,
            "video_id": a.video_id,
            "action_type": a.action_type.value,
            "timestamp": a.timestamp.astimezone(UTC).isoformat(),
        }
        if a.watch_ms is not None:
            body["watch_ms"] = a.watch_ms
        return orjson.dumps(body)

    @classmethod
    def from_json(cls, raw: bytes) -> VideoActionRecorded:
        return cls(action_from_json(raw))


def action_from_json(raw: bytes) -> VideoAction:
    """The action of one `VideoActionRecorded` message; raises `InvalidInput` saying what is
    wrong (consumers take thousands per batch, so this skips the event wrapper)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"event is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInput("event is not a JSON object")
    return VideoAction(
        id=validate_event_id(body.get("id")),
        user_id=validate_id(body.get("user_id"), "user_id"),
        video_id=validate_id(body.get("video_id"), "video_id"),
        action_type=parse_action_type(body.get("action_type")),
        timestamp=parse_timestamp(body.get("timestamp")),
        watch_ms=validate_watch_ms(body.get("watch_ms")),
    )


def make_action(
    event_id: str,
    user_id: str,
    video_id: str,
    action_type: ActionType | str,
    timestamp: datetime,
    watch_ms: int | None = None,
) -> VideoAction:
    return VideoAction(
        id=event_id,
        user_id=user_id,
        video_id=video_id,
        action_type=ActionType(action_type),
        timestamp=timestamp,
        watch_ms=watch_ms,
    )
