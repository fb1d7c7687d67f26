"""Rules every id, tag and timestamp obeys, whichever door it comes in by."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from recomind.domain.errors import InvalidInput
from recomind.domain.model import ActionType

ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# A UUID already in canonical form (what str(uuid.UUID(...)) gives), as every event on the bus.
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_TAGS = 32
MAX_TAG_LENGTH = 64
# The stores keep `watch_ms` in a 32-bit integer column (`INTEGER` / `INT`): about 24.8 days.
MAX_WATCH_MS = 2**31 - 1
# Epoch seconds after this are taken to be milliseconds by mistake: reject rather than guess.
_MAX_EPOCH_SECONDS = 32503680000  # year 3000


def validate_id(value: object, field: str = "id", row: int | None = None) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidInput(
            "must be a non-empty string of at most 64 characters from [A-Za-z0-9._:-]",
            field=field,
            row=row,
        )
    return value


def validate_event_id(value: object, row: int | None = None) -> str:
    """Client-supplied event ids are UUIDs, normalised to their canonical form."""
    if isinstance(value, str) and CANONICAL_UUID.fullmatch(value):
        return value  # canonical already: a consumer decodes thousands per batch
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise InvalidInput("must be a UUID", field="id", row=row) from None


def new_event_id() -> str:
    return str(uuid.uuid4())


_ACTION_TYPES = {t.value: t for t in ActionType}


def parse_action_type(value: object, row: int | None = None) -> ActionType:
    if isinstance(value, str) and (found := _ACTION_TYPES.get(value)) is not None:
        return found  # already canonical, as on the bus: no enum lookup by value
    try:
        return ActionType(str(value).strip().lower())
    except ValueError:
        raise InvalidInput(
            f"must be one of view, like, skip (got {value!r})", field="action_type", row=row
        ) from None


def normalise_tag(tag: str) -> str:
    return tag.strip().lstrip("#").strip().lower()


def normalise_tags(tags: Iterable[object], row: int | None = None) -> tuple[str, ...]:
    """Lower-case, strip a leading '#', drop empties and repeats; at most 32 tags."""
    seen: dict[str, None] = {}
    for raw in tags:
        if not isinstance(raw, str):
            raise InvalidInput("each tag must be a string", field="tags", row=row)
        tag = normalise_tag(raw)
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidInput(f"tag longer than {MAX_TAG_LENGTH} characters", "tags", row)
        if tag:
            seen[tag] = None
    if len(seen) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags per video", field="tags", row=row)
    return tuple(seen)


def parse_timestamp(value: object, row: int | None = None) -> datetime:
    """ISO 8601 (naive means UTC) or epoch seconds; always returns an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(float(value), row)
    if isinstance(value, str):
        if len(value) > 19 and value[10] == "T" and value.endswith("+00:00"):
            # An aware UTC time as `isoformat` writes it, as every event on the bus carries:
            # parsed straight to UTC (other forms take the general way below).
            try:
                return datetime.fromisoformat(value).astimezone(UTC)
            except ValueError:
                pass
        text = value.strip()
        # "YYYY-MM-DDThh…" is never a number (a float has "-" only first or after "e", and
        # never "T" or an inner space): skip the attempt, it costs an exception per event.
        if not (len(text) > 10 and text[4] == "-" and text[10] in "T "):
            try:
                return _from_epoch(float(text), row)
            except ValueError:
                pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(
                f"not ISO 8601 or epoch seconds: {value!r}", field="timestamp", row=row
            ) from None
        return parse_timestamp(parsed)
    raise InvalidInput("must be ISO 8601 or epoch seconds", field="timestamp", row=row)


def _from_epoch(seconds: float, row: int | None) -> datetime:
    if not 0 <= seconds <= _MAX_EPOCH_SECONDS:
        raise InvalidInput("epoch seconds out of range", field="timestamp", row=row)
    return datetime.fromtimestamp(seconds, tz=UTC)


def validate_watch_ms(value: object, row: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput("must be a non-negative integer", field="watch_ms", row=row)
    if value > MAX_WATCH_MS:
        raise InvalidInput(f"must be at most {MAX_WATCH_MS}", field="watch_ms", row=row)
    return value
