"""The bus message for a viewer's action: its JSON wire form, and what it refuses."""

from __future__ import annotations

import string
import uuid
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recomind.domain.errors import InvalidInput
from recomind.domain.events import VideoActionRecorded, make_action
from recomind.domain.model import ActionType, VideoAction

EVENT_ID = "2f1c7a52-93c4-4a5e-9d0f-0b7a7f1c2e11"
GOOD = {
    "id": EVENT_ID,
    "user_id": "u1",
    "video_id": "v1",
    "action_type": "like",
    "timestamp": "2024-03-01T12:00:00Z",
}

ids = st.text(alphabet=string.ascii_letters + string.digits + "._:-", min_size=1, max_size=64)
actions = st.builds(
    VideoAction,
    id=st.uuids().map(str),
    user_id=ids,
    video_id=ids,
    action_type=st.sampled_from(list(ActionType)),
    timestamp=st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2900, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))]),
    ),
    watch_ms=st.none() | st.integers(min_value=0, max_value=10**9),
)


def encode(body: object) -> bytes:
    return orjson.dumps(body)


@given(actions)
def test_json_round_trip(action: VideoAction) -> None:
    back = VideoActionRecorded.from_json(VideoActionRecorded(action).to_json()).action
    assert back == action
    assert back.timestamp.utcoffset() == timedelta(0)


def test_wire_form_has_the_documented_fields() -> None:
    action = make_action(EVENT_ID, "u1", "v9", "skip", datetime(2024, 3, 1, 14, tzinfo=UTC))
    body = orjson.loads(VideoActionRecorded(action).to_json())
    assert body == {
        "id": EVENT_ID,
        "user_id": "u1",
        "video_id": "v9",
        "action_type": "skip",
        "timestamp": "2024-03-01T14:00:00+00:00",
    }
    with_watch = make_action(EVENT_ID, "u1", "v9", "view", action.timestamp, watch_ms=4200)
    assert orjson.loads(VideoActionRecorded(with_watch).to_json())["watch_ms"] == 4200


def test_the_message_key_is_the_viewer() -> None:
    action = make_action(EVENT_ID, "u77", "v1", ActionType.VIEW, datetime(2024, 3, 1, tzinfo=UTC))
    assert VideoActionRecorded(action).key == "u77"


def test_a_good_message_parses_and_optional_fields_are_accepted() -> None:
    event = VideoActionRecorded.from_json(encode({**GOOD, "watch_ms": 1500, "context": {"a": 1}}))
    assert event.action == VideoAction(
        EVENT_ID, "u1", "v1", ActionType.LIKE, datetime(2024, 3, 1, 12, tzinfo=UTC), 1500
    )


def test_fields_are_normalised_on_the_way_in() -> None:
    body = {**GOOD, "id": EVENT_ID.upper(), "action_type": "VIEW", "timestamp": 1709294400}
    action = VideoActionRecorded.from_json(encode(body)).action
    assert action.id == EVENT_ID
    assert action.action_type is ActionType.VIEW
    assert action.timestamp == datetime(2024, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"{",
        b"[1, 2]",
        b'"a string"',
        b"null",
        b"\xff\xfe",
    ],
)
def test_messages_that_are_not_json_objects_are_rejected(raw: bytes) -> None:
    with pytest.raises(InvalidInput):
        VideoActionRecorded.from_json(raw)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", None),
        ("id", "not-a-uuid"),
        ("user_id", None),
        ("user_id", ""),
        ("user_id", "has space"),
        ("user_id", 17),
        ("video_id", "x" * 65),
        ("action_type", "share"),
        ("action_type", None),
        ("timestamp", "soon"),
        ("timestamp", None),
        ("timestamp", -10),
        ("watch_ms", -1),
        ("watch_ms", 2**31),
        ("watch_ms", "100"),
        ("watch_ms", True),
    ],
)
def test_a_bad_field_is_rejected_and_named(field: str, value: object) -> None:
    body = {**GOOD, field: value}
    with pytest.raises(InvalidInput) as info:
        VideoActionRecorded.from_json(encode(body))
    assert info.value.field == field


@pytest.mark.parametrize("field", ["id", "user_id", "video_id", "action_type", "timestamp"])
def test_a_missing_field_is_rejected(field: str) -> None:
    body = {k: v for k, v in GOOD.items() if k != field}
    with pytest.raises(InvalidInput) as info:
        VideoActionRecorded.from_json(encode(body))
    assert info.value.field == field


def test_events_are_immutable() -> None:
    event = VideoActionRecorded.from_json(encode(GOOD))
    with pytest.raises(AttributeError):
        event.action = event.action  # type: ignore[misc]
    assert uuid.UUID(event.action.id)
